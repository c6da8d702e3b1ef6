// The dispatch table against the contract, and routing refusals (no token needed).
#include "daemon/dispatch.hpp"
#include "tests/support/catch.hpp"

#include <fstream>
#include <set>
#include <sstream>

using namespace hbsd;
using namespace hbsd::daemon;

namespace {

// "method Name(" at the start of a line of the .varlink file. (No std::regex: GCC 12 warns
// inside it under ASan, and -Werror makes that fatal.)
std::set<std::string> contract_methods() {
    std::ifstream in(HBSD_VARLINK);
    std::set<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("method ", 0) != 0) continue;
        const auto paren = line.find('(');
        if (paren != std::string::npos)
            out.insert("vn.hocbaso.Signer." + line.substr(7, paren - 7));
    }
    return out;
}

Caller caller_with(CapabilitySet caps) {
    return Caller{1000, 1000, 1, caps, {}};
}

std::string route_outcome(const Dispatcher& d, const Caller& c, const std::string& method,
                          bool more = false) {
    protocol::Call call{method, {}};
    call.more = more;
    try {
        d.route(c, call);
        return "ok";
    } catch (const Error& e) {
        return std::string(error_name(e.code()));
    }
}

}  // namespace

TEST_CASE("dispatch: every method of the contract has exactly one entry") {
    const auto methods = contract_methods();
    REQUIRE(methods.size() == 23);
    std::set<std::string> table;
    for (const auto& e : Dispatcher::table())
        if (e.interface == kSignerInterface)
            CHECK(table.insert(std::string(e.interface) + "." + std::string(e.name)).second);
    CHECK(table == methods);
}

TEST_CASE("dispatch: capabilities follow the contract's header") {
    auto needs = [](const char* m) {
        return Dispatcher::find(std::string("vn.hocbaso.Signer.") + m)->needs;
    };
    for (auto m : {"Status", "ListTokens", "ListKeys", "Verify", "GetRecord", "WatchEvents"})
        CHECK(needs(m) == Capability::read);
    for (auto m : {"OpenSession", "CloseSession", "Sign", "SignBatch"})
        CHECK(needs(m) == Capability::sign);
    for (auto m :
         {"RegisterCertificate", "ApproveCertificate", "RevokeCertificate", "ListCertificates",
          "AssignRole", "UnassignRole", "ListAssignments", "SetYearLock", "RequestRevocation",
          "DecideRevocation", "TransferRecord", "GetAuditLog", "VerifyAuditLog"})
        CHECK(needs(m) == Capability::admin);
}

TEST_CASE("dispatch: refusals before any handler") {
    std::vector<std::string> refused;
    Dispatcher d([&](const Caller&, std::string_view method, const Error&) {
        refused.emplace_back(method);
    });
    const auto none = caller_with(0);
    const auto reader = caller_with(closure(Capability::read));
    const auto signer = caller_with(closure(Capability::sign));
    const auto admin = caller_with(closure(Capability::admin));

    CHECK(route_outcome(d, none, "org.varlink.service.GetInfo") == "ok");
    CHECK(route_outcome(d, none, "vn.hocbaso.Signer.Status") ==
          "vn.hocbaso.Signer.PermissionDenied");
    CHECK(route_outcome(d, reader, "vn.hocbaso.Signer.Status") == "ok");
    CHECK(route_outcome(d, reader, "vn.hocbaso.Signer.Sign") ==
          "vn.hocbaso.Signer.PermissionDenied");
    CHECK(route_outcome(d, signer, "vn.hocbaso.Signer.Sign") == "ok");
    CHECK(route_outcome(d, signer, "vn.hocbaso.Signer.SetYearLock") ==
          "vn.hocbaso.Signer.PermissionDenied");
    CHECK(refused == std::vector<std::string>{"vn.hocbaso.Signer.Status", "vn.hocbaso.Signer.Sign",
                                              "vn.hocbaso.Signer.SetYearLock"});

    // Administration is implemented (issue 4): routed for admin.
    CHECK(route_outcome(d, admin, "vn.hocbaso.Signer.SetYearLock") == "ok");
    CHECK(route_outcome(d, admin, "vn.hocbaso.SignerAdmin.GetArchived") == "ok");
    CHECK(route_outcome(d, admin, "vn.hocbaso.Signer.NoSuchMethod") ==
          "org.varlink.service.MethodNotFound");
    CHECK(route_outcome(d, admin, "org.example.Thing.Do") ==
          "org.varlink.service.InterfaceNotFound");
    CHECK(route_outcome(d, admin, "NoDots") == "org.varlink.service.InterfaceNotFound");
    CHECK(route_outcome(d, reader, "vn.hocbaso.Signer.WatchEvents") ==
          "org.varlink.service.ExpectedMore");
}

TEST_CASE("dispatch: the error carries uid and method") {
    Dispatcher d;
    protocol::Call call{"vn.hocbaso.Signer.Sign", {}};
    try {
        d.route(caller_with(closure(Capability::read)), call);
        FAIL("not refused");
    } catch (const Error& e) {
        CHECK(e.parameters().at("uid").as_int64() == 1000);
        CHECK(e.parameters().at("method").as_string() == "vn.hocbaso.Signer.Sign");
    }
}
