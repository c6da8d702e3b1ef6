// Store::run_audited: an administrative change and its audit entry are one transaction.
#include "tests/support/catch.hpp"

#include "store/store.hpp"
#include "support.hpp"

using namespace hbsd;
using namespace hbsd::store;
using hbsd::test::TempDir;

TEST_CASE("run_audited writes the change and its entry together, or neither") {
    TempDir dir;
    auto store = Store::open(dir / "hbsd.db");
    AuditInput entry;
    entry.method = "SetYearLock";
    entry.detail = "lock";
    const auto seq =
        store.run_audited(entry, [&] { store.set_year_lock("94000123", "2024-2025", true); });
    CHECK(seq == 1);
    CHECK(store.is_year_locked("94000123", "2024-2025"));
    REQUIRE(store.list_audit().size() == 1);

    // The change fails half-way: the lock set before the failure is rolled back, no entry.
    CHECK_THROWS_AS(store.run_audited(entry,
                                      [&] {
                                          store.set_year_lock("94000123", "2025-2026", true);
                                          store.approve_certificate(std::string(64, 'a'));
                                      }),
                    hbsd::Error);
    CHECK_FALSE(store.is_year_locked("94000123", "2025-2026"));
    CHECK(store.list_audit().size() == 1);

    // `change` may fill in the entry (e.g. a fingerprint it learns).
    entry.method = "AssignRole";
    store.run_audited(entry, [&] {
        store.assign({"94000123", "2024-2025", Role::principal, "HT01", {}, {}});
        entry.detail = "filled in";
    });
    const auto log = store.list_audit();
    REQUIRE(log.size() == 2);
    CHECK(log[1].detail == "filled in");
    CHECK(store.verify_audit().ok);
}
