// Starts Swagger UI on the gateway's own OpenAPI document. A file of its
// own rather than an inline script, so that the page's
// Content-Security-Policy can forbid inline scripts.
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No online validator badge: the page makes no request off the gateway.
  validatorUrl: null,
});
