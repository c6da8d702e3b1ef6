#include "hsm/module.hpp"

#include <dlfcn.h>

#include <utility>

#include "hsm/errors.hpp"
#include "protocol/error.hpp"

namespace hbsd::hsm {

NoPromptUi::NoPromptUi() : method_(UI_create_method("hbsd hsm: no PIN prompts")) {
    if (!method_) throw Error::internal("UI_create_method failed");
    UI_method_set_reader(method_, [](UI*, UI_STRING*) { return -1; });
}
NoPromptUi::NoPromptUi(NoPromptUi&& other) noexcept
    : method_(std::exchange(other.method_, nullptr)) {}
NoPromptUi::~NoPromptUi() {
    if (method_) UI_destroy_method(method_);
}

Pkcs11Ctx::Pkcs11Ctx(const std::string& module_path, const NoPromptUi& ui)
    : ctx_(PKCS11_CTX_new()) {
    if (!ctx_) throw Error::internal("PKCS11_CTX_new failed");
    if (PKCS11_set_ui_method(ctx_, ui.get(), nullptr) != 0) {
        PKCS11_CTX_free(ctx_);
        throw Error::internal("PKCS11_set_ui_method failed");
    }
    clear_p11_failures();
    if (PKCS11_CTX_load(ctx_, module_path.c_str()) != 0) {
        const auto failure = take_p11_failure();
        PKCS11_CTX_free(ctx_);
        throw Error::internal("cannot load PKCS#11 module " + module_path + ": " + failure.detail);
    }
}
Pkcs11Ctx::Pkcs11Ctx(Pkcs11Ctx&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
Pkcs11Ctx& Pkcs11Ctx::operator=(Pkcs11Ctx&& other) noexcept {
    if (this != &other) {
        Pkcs11Ctx gone(std::move(*this));
        ctx_ = std::exchange(other.ctx_, nullptr);
    }
    return *this;
}
Pkcs11Ctx::~Pkcs11Ctx() {
    if (!ctx_) return;
    PKCS11_CTX_unload(ctx_);
    PKCS11_CTX_free(ctx_);
}

Pkcs11SlotList::Pkcs11SlotList(Pkcs11SlotList&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)),
      slots_(std::exchange(other.slots_, nullptr)),
      count_(std::exchange(other.count_, 0)) {}
Pkcs11SlotList& Pkcs11SlotList::operator=(Pkcs11SlotList&& other) noexcept {
    if (this != &other) {
        Pkcs11SlotList gone(std::move(*this));
        ctx_ = std::exchange(other.ctx_, nullptr);
        slots_ = std::exchange(other.slots_, nullptr);
        count_ = std::exchange(other.count_, 0);
    }
    return *this;
}
Pkcs11SlotList::~Pkcs11SlotList() {
    if (ctx_ && slots_) PKCS11_release_all_slots(ctx_, slots_, count_);
}

Pkcs11SlotList Pkcs11SlotList::none(const Pkcs11Ctx& ctx) noexcept {
    Pkcs11SlotList list;
    list.ctx_ = ctx.get();
    return list;
}

Pkcs11SlotList Pkcs11SlotList::enumerate(const Pkcs11Ctx& ctx) {
    Pkcs11SlotList list;
    list.ctx_ = ctx.get();
    clear_p11_failures();
    if (PKCS11_enumerate_slots(list.ctx_, &list.slots_, &list.count_) != 0) {
        const auto failure = take_p11_failure();
        list.slots_ = nullptr;
        list.count_ = 0;
        throw Error::internal("PKCS11_enumerate_slots: " + failure.detail);
    }
    return list;
}

ModuleFunctions::ModuleFunctions(const std::string& module_path)
    : handle_(::dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)), list_(nullptr) {
    if (!handle_) throw Error::internal("module " + module_path + " is not loaded");
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle_, "C_GetFunctionList"));
    if (!get || get(&list_) != CKR_OK || !list_) {
        ::dlclose(handle_);
        throw Error::internal("module " + module_path + " has no usable C_GetFunctionList");
    }
}
ModuleFunctions::ModuleFunctions(ModuleFunctions&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), list_(std::exchange(other.list_, nullptr)) {}
ModuleFunctions& ModuleFunctions::operator=(ModuleFunctions&& other) noexcept {
    if (this != &other) {
        ModuleFunctions gone(std::move(*this));
        handle_ = std::exchange(other.handle_, nullptr);
        list_ = std::exchange(other.list_, nullptr);
    }
    return *this;
}
ModuleFunctions::~ModuleFunctions() {
    if (handle_) ::dlclose(handle_);
}

Pkcs11Session::Pkcs11Session(Pkcs11Session&& other) noexcept
    : functions_(std::exchange(other.functions_, nullptr)),
      handle_(std::exchange(other.handle_, 0)) {}
Pkcs11Session& Pkcs11Session::operator=(Pkcs11Session&& other) noexcept {
    if (this != &other) {
        Pkcs11Session gone(std::move(*this));
        functions_ = std::exchange(other.functions_, nullptr);
        handle_ = std::exchange(other.handle_, 0);
    }
    return *this;
}
Pkcs11Session::~Pkcs11Session() {
    if (functions_) functions_->C_CloseSession(handle_);
}

}  // namespace hbsd::hsm
