// Record states: revocation (thu hồi), transfer between schools, issued years, and the history
// of every change.
#include <boost/json.hpp>

#include "protocol/error.hpp"
#include "store/impl.hpp"
#include "store/text.hpp"

namespace hbsd::store {
namespace {

RecordStateKind state_from(std::string_view s) {
    if (s == "active") return RecordStateKind::active;
    if (s == "revocation_requested") return RecordStateKind::revocation_requested;
    if (s == "revoked") return RecordStateKind::revoked;
    if (s == "transferred") return RecordStateKind::transferred;
    throw Error::internal("store: unknown record state " + std::string(s));
}

void set_state(Database& db, std::string_view record, RecordStateKind state,
               std::optional<RecordStateKind> prior, std::optional<std::string_view> school) {
    auto st = db.prepare(
        "UPDATE records SET state = ?2, prior_state = ?3, school = coalesce(?4, school) "
        "WHERE record = ?1");
    st.bind(1, record).bind(2, to_string(state));
    if (prior)
        st.bind(3, to_string(*prior));
    else
        st.bind_null(3);
    if (school)
        st.bind(4, *school);
    else
        st.bind_null(4);
    st.run();
}

RecordState must_find(Database& db, std::string_view record) {
    auto r = detail::record_find(db, record);
    if (!r) throw Error::record_not_found(record);
    return std::move(*r);
}

std::optional<RecordStateKind> prior_state(Database& db, std::string_view record) {
    auto st = db.prepare("SELECT prior_state FROM records WHERE record = ?1");
    st.bind(1, record);
    if (!st.step() || st.is_null(0)) return std::nullopt;
    return state_from(st.text(0));
}

}  // namespace

std::string_view to_string(RecordStateKind state) noexcept {
    switch (state) {
        case RecordStateKind::active:
            return "active";
        case RecordStateKind::revocation_requested:
            return "revocation_requested";
        case RecordStateKind::revoked:
            return "revoked";
        case RecordStateKind::transferred:
            return "transferred";
    }
    return "active";
}

boost::json::object RecordState::to_json() const {
    boost::json::array years(issued_years.begin(), issued_years.end());
    boost::json::array events(history.begin(), history.end());
    return {{"record", record},
            {"school", school},
            {"state", to_string(state)},
            {"issued_years", std::move(years)},
            {"history", std::move(events)}};
}

namespace detail {

std::optional<RecordState> record_find(Database& db, std::string_view record) {
    auto st = db.prepare("SELECT school, state FROM records WHERE record = ?1");
    st.bind(1, record);
    if (!st.step()) return std::nullopt;
    RecordState r;
    r.record = record;
    r.school = st.text(0);
    r.state = state_from(st.text(1));

    // Years sort by their text ("2024-2025" < "2025-2026"), which is chronological.
    auto years = db.prepare("SELECT year FROM record_years WHERE record = ?1 ORDER BY year");
    years.bind(1, record);
    while (years.step()) r.issued_years.push_back(years.text(0));

    auto events =
        db.prepare("SELECT time, event, detail FROM record_events WHERE record = ?1 ORDER BY id");
    events.bind(1, record);
    while (events.step()) {
        std::string line = events.text(0) + " " + events.text(1);
        if (auto d = events.text(2); !d.empty()) line += ": " + d;
        r.history.push_back(std::move(line));
    }
    return r;
}

void record_create(Database& db, std::string_view record, std::string_view school,
                   const std::string& time) {
    db.prepare(
          "INSERT INTO records (record, school, state, created_at) VALUES (?1, ?2, 'active', ?3)")
        .bind(1, record)
        .bind(2, school)
        .bind(3, time)
        .run();
    record_event(db, record, time, "created", "school " + std::string(school));
}

void record_event(Database& db, std::string_view record, const std::string& time,
                  std::string_view event, std::string_view detail) {
    db.prepare("INSERT INTO record_events (record, time, event, detail) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, record)
        .bind(2, time)
        .bind(3, event)
        .bind(4, detail)
        .run();
}

bool record_issue_year(Database& db, std::string_view record, std::string_view year,
                       const std::string& time) {
    db.prepare("INSERT OR IGNORE INTO record_years (record, year, issued_at) VALUES (?1, ?2, ?3)")
        .bind(1, record)
        .bind(2, year)
        .bind(3, time)
        .run();
    if (db.changes() == 0) return false;
    record_event(db, record, time, "issued", "year " + std::string(year));
    return true;
}

}  // namespace detail

RecordState Store::get_record(std::string_view record) const {
    std::lock_guard lock(impl_->mutex);
    return must_find(impl_->db, record);
}

std::optional<RecordState> Store::find_record(std::string_view record) const {
    std::lock_guard lock(impl_->mutex);
    return detail::record_find(impl_->db, record);
}

RecordState Store::ensure_record(std::string_view record, std::string_view school) {
    if (record.empty()) throw Error::invalid_parameter("record");
    if (school.empty()) throw Error::invalid_parameter("school");
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    if (!detail::record_find(db, record)) detail::record_create(db, record, school, now_rfc3339());
    auto r = must_find(db, record);
    tx.commit();
    return r;
}

RecordState Store::request_revocation(std::string_view record, std::string_view reason) {
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    const RecordState r = must_find(db, record);
    switch (r.state) {
        case RecordStateKind::revoked:
            throw Error::policy("record_revoked",
                                "record " + std::string(record) + " is already revoked");
        case RecordStateKind::revocation_requested:
            throw Error::invalid_parameter("record");
        case RecordStateKind::active:
        case RecordStateKind::transferred:
            break;
    }
    set_state(db, record, RecordStateKind::revocation_requested, r.state, std::nullopt);
    detail::record_event(db, record, now_rfc3339(), "revocation_requested", reason);
    auto out = must_find(db, record);
    tx.commit();
    return out;
}

RecordState Store::decide_revocation(std::string_view record, bool approved,
                                     std::string_view reference) {
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    const RecordState r = must_find(db, record);
    if (r.state != RecordStateKind::revocation_requested) throw Error::invalid_parameter("record");
    const std::string time = now_rfc3339();
    if (approved) {
        set_state(db, record, RecordStateKind::revoked, std::nullopt, std::nullopt);
        detail::record_event(db, record, time, "revoked", reference);
    } else {
        const auto back = prior_state(db, record).value_or(RecordStateKind::active);
        set_state(db, record, back, std::nullopt, std::nullopt);
        detail::record_event(db, record, time, "revocation_refused", reference);
    }
    auto out = must_find(db, record);
    tx.commit();
    return out;
}

RecordState Store::transfer_record(std::string_view record, std::string_view to_school) {
    if (to_school.empty()) throw Error::invalid_parameter("to_school");
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    const RecordState r = must_find(db, record);
    if (r.state == RecordStateKind::revoked || r.state == RecordStateKind::revocation_requested)
        throw Error::policy("record_revoked", "record " + std::string(record) + " is " +
                                                  std::string(to_string(r.state)));
    if (r.school == to_school) throw Error::invalid_parameter("to_school");
    set_state(db, record, RecordStateKind::transferred, std::nullopt, to_school);
    detail::record_event(db, record, now_rfc3339(), "transferred",
                         "from " + r.school + " to " + std::string(to_school));
    auto out = must_find(db, record);
    tx.commit();
    return out;
}

RecordState Store::add_issued_year(std::string_view record, std::string_view year) {
    if (year.empty()) throw Error::invalid_parameter("year");
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);
    must_find(db, record);
    detail::record_issue_year(db, record, year, now_rfc3339());
    auto out = must_find(db, record);
    tx.commit();
    return out;
}

}  // namespace hbsd::store
