// org.varlink.service: introspection, answered on the I/O thread (no blocking work).
#include "daemon/handlers.hpp"

namespace hbsd::daemon {

std::string_view varlink_service_description() noexcept {
    return R"(# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()
)";
}

namespace handlers {

boost::json::object get_info(Services&, Request& r) {
    r.params.finish();
    return {{"vendor", "hbsd"},
            {"product", "hbsd - signing appliance for digital school records (Hoc ba so)"},
            {"version", HBSD_VERSION},
            {"url", "man:hbsd(8)"},
            {"interfaces",
             boost::json::array{kServiceInterface, kSignerInterface, kSignerAdminInterface}}};
}

boost::json::object get_interface_description(Services&, Request& r) {
    const std::string iface = r.params.string("interface");
    r.params.finish();
    if (iface == kSignerInterface) return {{"description", signer_interface_description()}};
    if (iface == kServiceInterface) return {{"description", varlink_service_description()}};
    if (iface == kSignerAdminInterface)
        return {{"description", signer_admin_interface_description()}};
    throw Error(Errc::InterfaceNotFound, {{"interface", iface}});
}

boost::json::object pending(Services&, Request& r) {
    throw Error::method_not_found(r.call.method);
}

}  // namespace handlers
}  // namespace hbsd::daemon
