#include "daemon/devmode.hpp"

#include "daemon/log.hpp"
#include "daemon/openssl_handles.hpp"

#include <fcntl.h>
#include <libp11.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace hbsd::daemon::devmode {
namespace fs = std::filesystem;
namespace {

// A loaded libp11 context; unloading finalises the module, so that the daemon's own
// TokenManager can initialise it afresh afterwards.
class Pkcs11Ctx {
  public:
    explicit Pkcs11Ctx(const std::string& module) : ctx_(PKCS11_CTX_new()) {
        if (!ctx_ || PKCS11_CTX_load(ctx_, module.c_str()) != 0) {
            if (ctx_) PKCS11_CTX_free(ctx_);
            throw std::runtime_error("dev mode: cannot load " + module);
        }
    }
    ~Pkcs11Ctx() {
        PKCS11_CTX_unload(ctx_);
        PKCS11_CTX_free(ctx_);
    }
    Pkcs11Ctx(const Pkcs11Ctx&) = delete;
    Pkcs11Ctx& operator=(const Pkcs11Ctx&) = delete;
    PKCS11_CTX* get() const noexcept { return ctx_; }

  private:
    PKCS11_CTX* ctx_;
};

// The slot list of one enumeration.
class Pkcs11Slots {
  public:
    explicit Pkcs11Slots(const Pkcs11Ctx& ctx) : ctx_(ctx.get()) {
        if (PKCS11_enumerate_slots(ctx_, &slots_, &count_) != 0)
            throw std::runtime_error("dev mode: cannot enumerate PKCS#11 slots");
    }
    ~Pkcs11Slots() {
        if (slots_) PKCS11_release_all_slots(ctx_, slots_, count_);
    }
    Pkcs11Slots(const Pkcs11Slots&) = delete;
    Pkcs11Slots& operator=(const Pkcs11Slots&) = delete;

    PKCS11_SLOT* find(bool initialized, const char* label = nullptr) const noexcept {
        for (unsigned i = 0; i < count_; ++i) {
            const auto* t = slots_[i].token;
            if (!t || static_cast<bool>(t->initialized) != initialized) continue;
            if (label) {
                std::string have(t->label);
                while (!have.empty() && have.back() == ' ') have.pop_back();
                if (have != label) continue;
            }
            return &slots_[i];
        }
        return nullptr;
    }

  private:
    PKCS11_CTX* ctx_;
    PKCS11_SLOT* slots_ = nullptr;
    unsigned count_ = 0;
};

[[noreturn]] void openssl_fail(const std::string& what) {
    char buf[256] = "";
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    ERR_clear_error();
    throw std::runtime_error("dev mode: " + what + ": " + buf);
}

std::string random_digits(int n) {
    std::string s;
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) openssl_fail("RAND_bytes");
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + b[i] % 10));
    return s;
}

X509NamePtr make_name(const std::string& org, const std::string& cn) {
    X509NamePtr n(X509_NAME_new());
    auto add = [&](const char* field, const std::string& v) {
        if (!X509_NAME_add_entry_by_txt(n.get(), field, MBSTRING_UTF8,
                                        reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1,
                                        0))
            openssl_fail("X509_NAME_add_entry");
    };
    add("C", "VN");
    add("O", org);
    add("CN", cn);
    return n;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || !X509_add_ext(cert, ext.get(), -1)) openssl_fail("extension " + std::string(value));
}

// `issuer`/`issuer_key` null: self-signed CA.
X509Ptr issue(EVP_PKEY* key, const X509_NAME* subject, X509* issuer, EVP_PKEY* issuer_key, bool ca,
              long days) {
    X509Ptr x(X509_new());
    if (!x || !X509_set_version(x.get(), 2)) openssl_fail("X509_new");
    Bignum serial(BN_new());
    if (!BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get())))
        openssl_fail("serial");
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), days * 86400);
    X509_set_subject_name(x.get(), subject);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : subject);
    X509_set_pubkey(x.get(), key);
    X509* signer_cert = issuer ? issuer : x.get();
    if (ca) {
        add_ext(x.get(), signer_cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x.get(), signer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(x.get(), signer_cert, NID_subject_key_identifier, "hash");
    } else {
        add_ext(x.get(), signer_cert, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x.get(), signer_cert, NID_key_usage, "critical,digitalSignature,nonRepudiation");
        add_ext(x.get(), signer_cert, NID_subject_key_identifier, "hash");
        add_ext(x.get(), signer_cert, NID_authority_key_identifier, "keyid");
    }
    if (!X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256())) openssl_fail("X509_sign");
    return x;
}

void write_pem(const fs::path& p, X509* cert) {
    FILE* f = std::fopen(p.c_str(), "w");
    if (!f) throw std::runtime_error("dev mode: cannot write " + p.string());
    const bool ok = PEM_write_X509(f, cert) == 1;
    std::fclose(f);
    if (!ok) openssl_fail("PEM_write_X509");
}

// fork/exec without a shell: the arguments are never re-parsed.
void run_quietly(const std::vector<std::string>& argv) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("dev mode: fork failed");
    if (pid == 0) {
        const int null = ::open("/dev/null", O_WRONLY);
        ::dup2(null, 1);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error("dev mode: " + argv[0] + " failed");
}

const std::array<const char*, 12> kSubjects{"TOAN", "NGUVAN",    "TIENGANH", "GDCD",
                                            "LSDL", "KHTN",      "CONGNGHE", "TINHOC",
                                            "GDTC", "NGHETHUAT", "HDTNHN",   "GDDP"};
constexpr const char* kSchool = "94000123";

}  // namespace

DevEnvironment::DevEnvironment(const Options& options) {
    std::string pattern = (fs::temp_directory_path() / "hbsd-dev-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("dev mode: mkdtemp failed");
    dir_ = pattern;
    try {
        const fs::path dir(dir_);
        fs::create_directories(dir / "tokens");
        fs::create_directories(dir / "trust");
        fs::create_directories(dir / "people");
        fs::create_directories(dir / "state");
        {
            std::ofstream conf(dir / "softhsm2.conf");
            conf << "directories.tokendir = " << (dir / "tokens").string()
                 << "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n";
        }
        // SoftHSM2 reads it when the module is initialised: here and in the TokenManager.
        ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
        pin_ = random_digits(6);
        const std::string so_pin = random_digits(10);

        // The PKI.
        EvpPkey ca_key(EVP_RSA_gen(2048));
        if (!ca_key) openssl_fail("CA key");
        auto ca_name = make_name("hbsd demo PKI", "hbsd Demo Root CA");
        auto ca = issue(ca_key.get(), ca_name.get(), nullptr, nullptr, true, 3650);
        ca_path_ = (dir / "trust" / "ca.pem").string();
        write_pem(ca_path_, ca.get());

        int n = 0;
        for (const char* s : kSubjects) {
            char code[8];
            std::snprintf(code, sizeof code, "GV%03d", ++n);
            people_.push_back({"subject_teacher",
                               s,
                               std::string("gvbm-") + s,
                               code,
                               std::string("Giao vien ") + s + " (" + code + ")",
                               {},
                               false});
        }
        people_.push_back({"homeroom_teacher",
                           {},
                           "gvcn",
                           "GVCN01",
                           "Giao vien chu nhiem 6A1 (GVCN01)",
                           {},
                           false});
        people_.push_back({"principal", {}, "ht", "HT01", "Hieu truong (HT01)", {}, false});
        people_.push_back({"school",
                           {},
                           "truong",
                           kSchool,
                           std::string("Truong THCS Le Quy Don (") + kSchool + ")",
                           {},
                           true});

        std::vector<EvpPkey> keys;
        std::vector<X509Ptr> certs;
        for (auto& p : people_) {
            keys.emplace_back(p.ec ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048));
            if (!keys.back()) openssl_fail("key for " + p.name);
            auto name = make_name(kSchool, p.common_name);
            certs.push_back(
                issue(keys.back().get(), name.get(), ca.get(), ca_key.get(), false, 825));
            p.certificate_path = (dir / "people" / (p.name + ".pem")).string();
            write_pem(p.certificate_path, certs.back().get());
        }

        // The token, through libp11: initialise the free slot, set the user PIN, store keys
        // and certificates (object id = position, label = name, as the test tokens have).
        bool ec_pending = false;
        {
            Pkcs11Ctx ctx(options.module_path);
            {
                Pkcs11Slots slots(ctx);
                PKCS11_SLOT* free_slot = slots.find(false);
                if (!free_slot) throw std::runtime_error("dev mode: no free SoftHSM2 slot");
                // Padded to the 32 bytes of CK_TOKEN_INFO.label by hand: libp11 0.4.12 pads with
                // NULs, which other PKCS#11 tools (softhsm2-util --token) then fail to match.
                std::string label(kTokenLabel);
                label.resize(32, ' ');
                if (PKCS11_init_token(free_slot->token, so_pin.c_str(), label.c_str()) != 0)
                    openssl_fail("PKCS11_init_token");
            }
            // SoftHSM2 gives an initialised token a new slot: enumerate again.
            Pkcs11Slots slots(ctx);
            PKCS11_SLOT* slot = slots.find(true, kTokenLabel);
            if (!slot) throw std::runtime_error("dev mode: the new token did not appear");
            if (PKCS11_open_session(slot, 1) != 0 || PKCS11_login(slot, 1, so_pin.c_str()) != 0 ||
                PKCS11_init_pin(slot->token, pin_.c_str()) != 0)
                openssl_fail("setting the user PIN");
            PKCS11_logout(slot);
            if (PKCS11_login(slot, 0, pin_.c_str()) != 0) openssl_fail("user login");
            for (std::size_t i = 0; i < people_.size(); ++i) {
                unsigned char id = static_cast<unsigned char>(i + 1);
                auto* label = const_cast<char*>(people_[i].name.c_str());
                // libp11 0.4.12 stores RSA keys only; the EC seal key is imported below.
                if (!people_[i].ec) {
                    if (PKCS11_store_private_key(slot->token, keys[i].get(), label, &id, 1) != 0 ||
                        PKCS11_store_public_key(slot->token, keys[i].get(), label, &id, 1) != 0)
                        openssl_fail("storing the key of " + people_[i].name);
                } else {
                    ec_pending = true;
                }
                if (PKCS11_store_certificate(slot->token, certs[i].get(), label, &id, 1, nullptr) !=
                    0)
                    openssl_fail("storing the certificate of " + people_[i].name);
            }
            PKCS11_logout(slot);
        }
        if (ec_pending) {
            // softhsm2-util imports an EC private key (and its public key) from PKCS#8; the file
            // lives only for the import, 0600, inside our own directory.
            for (std::size_t i = 0; i < people_.size(); ++i) {
                if (!people_[i].ec) continue;
                const auto key_file = dir / (people_[i].name + ".p8");
                FILE* f = nullptr;
                const int fd = ::open(key_file.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
                if (fd < 0 || !(f = ::fdopen(fd, "w")))
                    throw std::runtime_error("dev mode: cannot write " + key_file.string());
                const bool ok = PEM_write_PKCS8PrivateKey(f, keys[i].get(), nullptr, nullptr, 0,
                                                          nullptr, nullptr) == 1;
                std::fclose(f);
                if (!ok) openssl_fail("PEM_write_PKCS8PrivateKey");
                char id[24];
                std::snprintf(id, sizeof id, "%02x", static_cast<unsigned>(i + 1));
                try {
                    run_quietly({"softhsm2-util", "--import", key_file.string(), "--token",
                                 kTokenLabel, "--label", people_[i].name, "--id", id, "--pin",
                                 pin_});
                } catch (...) {
                    fs::remove(key_file);
                    throw;
                }
                fs::remove(key_file);
            }
        }

        config_.modules.push_back({"softhsm", options.module_path});
        config_.socket.path = options.socket_path;
        // Dev only: anyone may connect; what they may do is still decided per uid below.
        config_.socket.mode = 0666;
        config_.trust_anchors = (dir / "trust").string();
        config_.state_dir = (dir / "state").string();
        for (uid_t uid : options.grant)
            config_.access.push_back({uid, std::nullopt, closure(Capability::admin), "dev mode"});
    } catch (...) {
        std::error_code ec;
        fs::remove_all(dir_, ec);
        throw;
    }
}

DevEnvironment::~DevEnvironment() {
    OPENSSL_cleanse(pin_.data(), pin_.size());
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

std::string DevEnvironment::announcement(hsm::TokenManager& tokens) const {
    std::string token_uri;
    for (const auto& t : tokens.list_tokens())
        if (t.present && t.label == kTokenLabel) token_uri = t.uri;
    if (token_uri.empty()) throw std::runtime_error("dev mode: the demo token is not listed");
    const auto keys = tokens.list_keys(token_uri);
    boost::json::array people;
    for (const auto& p : people_) {
        std::string key;
        for (const auto& k : keys)
            if (k.label == p.name) key = k.uri;
        if (key.empty()) throw std::runtime_error("dev mode: no key " + p.name + " on the token");
        boost::json::object o{{"role", p.role},
                              {"name", p.name},
                              {"person", p.person},
                              {"key", key},
                              {"certificate", p.certificate_path}};
        if (!p.subject.empty()) o["subject"] = p.subject;
        people.push_back(std::move(o));
    }
    return boost::json::serialize(boost::json::object{{"socket", config_.socket.path},
                                                      {"token", token_uri},
                                                      {"pin", pin_},
                                                      {"ca", ca_path_},
                                                      {"people", std::move(people)}});
}

void DevEnvironment::provision_registry(store::Store& store) const {
    // One transaction with one audit entry, as an admin's own calls would leave.
    store::AuditInput entry;
    entry.uid = ::getuid();
    entry.method = "DevModeProvision";
    entry.detail = std::string("dev mode: demo certificates registered and approved, roles of ") +
                   kSchool + " " + kYear + " " + kClass + " assigned";
    store.run_audited(entry, [&] { provision_people(store); });
}

void DevEnvironment::provision_people(store::Store& store) const {
    for (const auto& p : people_) {
        std::ifstream in(p.certificate_path, std::ios::binary);
        const std::string pem((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
        const auto der = store::certificate_der_from(pem);
        const bool seal = p.role == "school";
        std::optional<std::string_view> person;
        if (!seal) person = p.person;
        const auto c = store.register_certificate(
            der, seal ? store::CertificateKind::school : store::CertificateKind::person, kSchool,
            person);
        store.approve_certificate(c.fingerprint);
        if (seal) continue;
        store::Assignment a;
        a.school = kSchool;
        a.year = kYear;
        a.role = *store::role_from_string(p.role);
        a.person = p.person;
        if (a.role != store::Role::principal) a.class_name = kClass;
        if (a.role == store::Role::subject_teacher) a.subject = p.subject;
        store.assign(a);
    }
}

}  // namespace hbsd::daemon::devmode
