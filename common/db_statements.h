#ifndef CHAT_COMMON_DB_STATEMENTS_H_
#define CHAT_COMMON_DB_STATEMENTS_H_

// The statements that open a read for one user, shared by DbPool::ReadRows
// and DbReader. Only common/db*.cc include this.

namespace chat::db_internal {

// The setting is made only for an account that exists, in the same implicit
// transaction as the statement that follows.
inline constexpr char kSetUserIfExists[] = "db_set_user_if_exists";
inline constexpr char kSetUserIfExistsSql[] =
    "SELECT set_config('app.user_id', $1, true) FROM users "
    "WHERE id = $1::uuid";
// The same, for a statement read with its generic plan (PreparedStatement::
// generic_plan): the setting lasts as long as the account's, this one
// transaction.
inline constexpr char kSetUserIfExistsGeneric[] =
    "db_set_user_if_exists_generic";
inline constexpr char kSetUserIfExistsGenericSql[] =
    "SELECT set_config('app.user_id', $1, true), "
    "set_config('plan_cache_mode', 'force_generic_plan', true) FROM users "
    "WHERE id = $1::uuid";

}  // namespace chat::db_internal

#endif  // CHAT_COMMON_DB_STATEMENTS_H_
