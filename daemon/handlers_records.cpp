// Records: their state (GetRecord, read capability), revocation (thu hồi: requested by the
// school, decided with the Ministry's reference) and transfer to another school. Each change is
// an audit entry and a record_changed event.
#include "daemon/handlers.hpp"
#include "daemon/handlers_admin_support.hpp"

#include <boost/json.hpp>

namespace hbsd::daemon::handlers {
namespace json = boost::json;

namespace {

// The change and its audit entry in one transaction, then the event.
json::object changed(Services& s, Request& r, store::AuditInput& a,
                     const std::function<store::RecordState()>& change) {
    store::RecordState st;
    change_audited(s, r, a, [&] { st = change(); });
    s.publish({"record_changed",
               {},
               {},
               st.record,
               std::string(store::to_string(st.state)) + " at " + st.school});
    return {{"record", st.to_json()}};
}

}  // namespace

json::object get_record(Services& s, Request& r) {
    const std::string record = r.params.string("record");
    r.params.finish();
    return {{"record", the_store(s).get_record(record).to_json()}};
}

json::object request_revocation(Services& s, Request& r) {
    const std::string record = r.params.string("record");
    const std::string reason = r.params.string("reason");
    r.params.finish();
    store::AuditInput a;
    a.record = record;
    a.detail = "reason: " + reason;
    return audited(s, r, a, [&] {
        return changed(s, r, a, [&] { return the_store(s).request_revocation(record, reason); });
    });
}

json::object decide_revocation(Services& s, Request& r) {
    const std::string record = r.params.string("record");
    const bool approved = r.params.boolean("approved");
    const std::string reference = r.params.string("reference");
    r.params.finish();
    store::AuditInput a;
    a.record = record;
    a.detail = std::string(approved ? "approved" : "rejected") + ", reference " + reference;
    return audited(s, r, a, [&] {
        return changed(s, r, a,
                       [&] { return the_store(s).decide_revocation(record, approved, reference); });
    });
}

json::object transfer_record(Services& s, Request& r) {
    const std::string record = r.params.string("record");
    const std::string to_school = r.params.string("to_school");
    r.params.finish();
    store::AuditInput a;
    a.record = record;
    a.detail = "to school " + to_school;
    return audited(s, r, a, [&] {
        return changed(s, r, a, [&] { return the_store(s).transfer_record(record, to_school); });
    });
}

}  // namespace hbsd::daemon::handlers
