#include "store/store.hpp"

#include "store/impl.hpp"
#include "store/migrations.hpp"

namespace hbsd::store {

Store Store::open(const std::filesystem::path& path) {
    auto db = Database::open(path);
    migrate(db);
    return Store(std::make_unique<Impl>(std::move(db), std::filesystem::absolute(path)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

int Store::schema_version() const {
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare("PRAGMA user_version");
    return st.step() ? static_cast<int>(st.int64(0)) : 0;
}

int Store::latest_schema_version() noexcept {
    return store::latest_schema_version();
}

}  // namespace hbsd::store
