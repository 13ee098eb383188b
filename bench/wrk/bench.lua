-- wrk script of bench/run.sh. Environment:
--   BENCH_OUT      file that done() writes its key=value summary to
--   BENCH_MODE     "append": POST a message to a conversation picked at random
--                  from BENCH_CONVS (one id a line) for every request, with
--                  BENCH_TOKEN and BENCH_CONTENT; anything else: the request
--                  of the command line (URL and -H headers) as it is
local mode = os.getenv("BENCH_MODE")

if mode == "append" then
  local paths = {}
  for id in io.lines(os.getenv("BENCH_CONVS")) do
    if id ~= "" then paths[#paths + 1] = "/v1/conversations/" .. id .. "/messages" end
  end
  local body = '{"role":"user","content":"' .. os.getenv("BENCH_CONTENT") .. '"}'
  local headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }
  local count = #paths

  function init(args)
    -- A different sequence in every thread.
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  end

  function request()
    return wrk.format("POST", paths[math.random(count)], headers, body)
  end
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write(string.format(
    "requests=%d\nduration_us=%d\np50_us=%d\np99_us=%d\nerr_status=%d\n" ..
    "err_connect=%d\nerr_read=%d\nerr_write=%d\nerr_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout))
  out:close()
end
