#include "bench/raw_sign.hpp"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <time.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace hbsd::bench {
namespace {

void check(CK_RV rv, const char* what) {
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        throw std::runtime_error(std::string(what) + " failed: CKR 0x" + std::to_string(rv));
}

// Loaded module; C_Finalize and dlclose in the destructor.
class Module {
  public:
    explicit Module(const std::string& path) {
        handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw std::runtime_error("dlopen " + path + ": " + dlerror());
        auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle_, "C_GetFunctionList"));
        if (!get) throw std::runtime_error("no C_GetFunctionList in " + path);
        check(get(&f_), "C_GetFunctionList");
        CK_C_INITIALIZE_ARGS args{};
        args.flags = CKF_OS_LOCKING_OK;
        check(f_->C_Initialize(&args), "C_Initialize");
    }
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    ~Module() {
        f_->C_Finalize(nullptr);
        dlclose(handle_);
    }
    CK_FUNCTION_LIST* f() const { return f_; }

  private:
    void* handle_ = nullptr;
    CK_FUNCTION_LIST* f_ = nullptr;
};

CK_SLOT_ID find_slot(CK_FUNCTION_LIST* f, const std::string& token_label) {
    CK_ULONG n = 0;
    check(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    check(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
    for (CK_ULONG i = 0; i < n; ++i) {
        CK_TOKEN_INFO ti{};
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
        std::string label(reinterpret_cast<const char*>(ti.label), sizeof ti.label);
        label.erase(label.find_last_not_of(' ') + 1);
        if (label == token_label) return slots[i];
    }
    throw std::runtime_error("token not found: " + token_label);
}

CK_OBJECT_HANDLE find_key(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, const std::string& label) {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    std::array<CK_ATTRIBUTE, 2> tmpl{{{CKA_CLASS, &cls, sizeof cls},
                                      {CKA_LABEL, const_cast<char*>(label.data()), label.size()}}};
    check(f->C_FindObjectsInit(s, tmpl.data(), tmpl.size()), "C_FindObjectsInit");
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG found = 0;
    check(f->C_FindObjects(s, &h, 1, &found), "C_FindObjects");
    f->C_FindObjectsFinal(s);
    if (found != 1) throw std::runtime_error("key not found: " + label);
    return h;
}

}  // namespace

double thread_cpu_seconds() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

RawSignResult raw_sign(const std::string& module_path, const std::string& token_label,
                       const std::string& pin, const std::string& label, RawKind kind, int threads,
                       double seconds) {
    Module m(module_path);
    CK_FUNCTION_LIST* f = m.f();
    const CK_SLOT_ID slot = find_slot(f, token_label);

    // SHA-256 DigestInfo prefix (RFC 8017, 9.2 note 1) + a fixed digest: the same bytes libp11
    // hands to CKM_RSA_PKCS when hbsd signs.
    static const unsigned char kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                            0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                            0x01, 0x05, 0x00, 0x04, 0x20};
    std::vector<unsigned char> input;
    if (kind == RawKind::rsa_pkcs1_sha256) input.assign(std::begin(kPrefix), std::end(kPrefix));
    input.resize(input.size() + 32, 0x5a);
    CK_MECHANISM mech{kind == RawKind::ecdsa ? CKM_ECDSA : CKM_RSA_PKCS, nullptr, 0};

    std::vector<CK_SESSION_HANDLE> sessions(threads);
    for (auto& s : sessions)
        check(f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s), "C_OpenSession");
    check(f->C_Login(sessions[0], CKU_USER,
                     reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())), pin.size()),
          "C_Login");
    const CK_OBJECT_HANDLE key = find_key(f, sessions[0], label);

    std::atomic<long> total{0};
    std::mutex cpu_mu;
    double cpu_total = 0;
    std::atomic<bool> failed{false};
    const auto start = std::chrono::steady_clock::now();
    const auto until = start + std::chrono::duration<double>(seconds);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, s = sessions[t]] {
            std::array<unsigned char, 512> sig{};
            long n = 0;
            const double cpu_start = thread_cpu_seconds();
            while (std::chrono::steady_clock::now() < until) {
                CK_ULONG len = sig.size();
                if (f->C_SignInit(s, &mech, key) != CKR_OK ||
                    f->C_Sign(s, input.data(), input.size(), sig.data(), &len) != CKR_OK) {
                    failed = true;
                    break;
                }
                ++n;
            }
            total += n;
            std::lock_guard lock(cpu_mu);
            cpu_total += thread_cpu_seconds() - cpu_start;
        });
    }
    for (auto& t : pool) t.join();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    f->C_Logout(sessions[0]);
    for (auto s : sessions) f->C_CloseSession(s);
    if (failed) throw std::runtime_error("C_Sign failed during the run");
    const double cpu_per_thread = cpu_total / threads;
    return {static_cast<double>(total) / elapsed,
            cpu_per_thread > 0 ? static_cast<double>(total) / threads / cpu_per_thread : 0,
            total.load()};
}

}  // namespace hbsd::bench
