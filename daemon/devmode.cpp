#include "daemon/devmode.hpp"
namespace hbsd::daemon::devmode {
DevEnvironment::DevEnvironment(const Options&) { throw std::runtime_error("dev mode: later"); }
DevEnvironment::~DevEnvironment() = default;
}
