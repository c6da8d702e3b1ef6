// Statements handed out by Database::prepare are reused (store/statement.hpp, StatementCache):
// a reused statement must behave exactly as a freshly prepared one.
#include "tests/support/catch.hpp"

#include <filesystem>
#include <optional>

#include "store/database.hpp"
#include "support.hpp"

using namespace hbsd::store;

namespace {

Database scratch_db(const hbsd::test::TempDir& dir) {
    Database db = Database::open(dir / "t.db");
    db.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
    db.exec("INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    return db;
}

}  // namespace

TEST_CASE("a reused statement starts again from the first row and forgets old bindings",
          "[store]") {
    hbsd::test::TempDir dir;
    Database db = scratch_db(dir);
    constexpr const char* sql = "SELECT k, v FROM t WHERE ?1 IS NULL OR k = ?1 ORDER BY k";
    {
        auto s = db.prepare(sql);
        s.bind(1, 2);
        REQUIRE(s.step());
        CHECK(s.text(1) == "two");
        // Left in the middle of a read, with a binding.
    }
    auto s = db.prepare(sql);  // the same text: the cached statement, reset and unbound
    REQUIRE(s.step());
    CHECK(s.int64(0) == 1);  // ?1 is NULL again: every row, from the first
    REQUIRE(s.step());
    CHECK(s.int64(0) == 2);
    // A second statement of the same text while the first is out is a separate one.
    auto t = db.prepare(sql);
    REQUIRE(t.step());
    CHECK(t.int64(0) == 1);
    REQUIRE(s.step());
    CHECK(s.int64(0) == 3);
}

TEST_CASE("a cached statement left mid-read does not hold a read snapshot", "[store]") {
    hbsd::test::TempDir dir;
    Database db = scratch_db(dir);
    {
        auto s = db.prepare("SELECT v FROM t ORDER BY k");
        REQUIRE(s.step());
    }
    // Another connection writes; ours must see it (a statement still stepping would pin the
    // old snapshot only inside a transaction, but an un-reset one also blocks checkpoints).
    {
        Database other = Database::open(dir / "t.db");
        other.exec("INSERT INTO t VALUES (4, 'four')");
        auto busy = other.prepare("PRAGMA wal_checkpoint(TRUNCATE)");
        REQUIRE(busy.step());
        CHECK(busy.int64(0) == 0);  // not blocked by our cached statement
    }
    auto s = db.prepare("SELECT count(*) FROM t");
    REQUIRE(s.step());
    CHECK(s.int64(0) == 4);
}

TEST_CASE("a statement may outlive its database", "[store]") {
    hbsd::test::TempDir dir;
    std::optional<Statement> kept;
    {
        Database db = scratch_db(dir);
        kept.emplace(db.prepare("SELECT v FROM t"));
        { auto idle = db.prepare("SELECT k FROM t"); }  // cached, idle when the db closes
    }
    kept.reset();  // finalized now; the connection closes with it (ASan/LSan would see a leak)
    SUCCEED();
}
