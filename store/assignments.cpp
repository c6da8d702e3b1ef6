// Who holds which role for a school and year, and which years are locked.
#include <boost/json.hpp>

#include "protocol/error.hpp"
#include "store/impl.hpp"
#include "store/text.hpp"

namespace hbsd::store {
namespace {

// The key as stored: absent class/subject are '' (see migrations.cpp for why).
struct Key {
    std::string class_name;
    std::string subject;
};

Key normalise(const Assignment& a) {
    if (a.school.empty()) throw Error::invalid_parameter("school");
    if (a.year.empty()) throw Error::invalid_parameter("year");
    if (a.person.empty()) throw Error::invalid_parameter("person");
    const bool has_class = a.class_name && !a.class_name->empty();
    const bool has_subject = a.subject && !a.subject->empty();
    switch (a.role) {
        case Role::subject_teacher:
            if (!has_class) throw Error::invalid_parameter("class");
            if (!has_subject) throw Error::invalid_parameter("subject");
            return {*a.class_name, *a.subject};
        case Role::homeroom_teacher:
            if (!has_class) throw Error::invalid_parameter("class");
            if (a.subject) throw Error::invalid_parameter("subject");
            return {*a.class_name, ""};
        case Role::principal:
            // The principal signs for the whole school: a class would suggest otherwise.
            if (a.class_name) throw Error::invalid_parameter("class");
            if (a.subject) throw Error::invalid_parameter("subject");
            return {"", ""};
    }
    throw Error::invalid_parameter("role");
}

}  // namespace

std::string_view to_string(Role role) noexcept {
    switch (role) {
        case Role::subject_teacher:
            return "subject_teacher";
        case Role::homeroom_teacher:
            return "homeroom_teacher";
        case Role::principal:
            return "principal";
    }
    return "subject_teacher";
}

std::optional<Role> role_from_string(std::string_view s) noexcept {
    if (s == "subject_teacher") return Role::subject_teacher;
    if (s == "homeroom_teacher") return Role::homeroom_teacher;
    if (s == "principal") return Role::principal;
    return std::nullopt;
}

boost::json::object Assignment::to_json() const {
    auto opt = [](const std::optional<std::string>& s) {
        return s ? boost::json::value(*s) : boost::json::value(nullptr);
    };
    return {{"school", school},         {"year", year},
            {"role", to_string(role)},  {"person", person},
            {"class", opt(class_name)}, {"subject", opt(subject)}};
}

void Store::assign(const Assignment& a) {
    const Key k = normalise(a);
    std::lock_guard lock(impl_->mutex);
    impl_->db
        .prepare(
            "INSERT OR IGNORE INTO assignments (school, year, role, person, class, subject) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(1, a.school)
        .bind(2, a.year)
        .bind(3, to_string(a.role))
        .bind(4, a.person)
        .bind(5, k.class_name)
        .bind(6, k.subject)
        .run();
}

bool Store::unassign(const Assignment& a) {
    const Key k = normalise(a);
    std::lock_guard lock(impl_->mutex);
    impl_->db
        .prepare(
            "DELETE FROM assignments WHERE school = ?1 AND year = ?2 AND role = ?3 AND "
            "person = ?4 AND class = ?5 AND subject = ?6")
        .bind(1, a.school)
        .bind(2, a.year)
        .bind(3, to_string(a.role))
        .bind(4, a.person)
        .bind(5, k.class_name)
        .bind(6, k.subject)
        .run();
    return impl_->db.changes() > 0;
}

std::vector<Assignment> Store::list_assignments(std::string_view school,
                                                std::string_view year) const {
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare(
        "SELECT role, person, class, subject FROM assignments WHERE school = ?1 AND year = ?2 "
        "ORDER BY role, class, subject, person");
    st.bind(1, school).bind(2, year);
    std::vector<Assignment> out;
    while (st.step()) {
        Assignment a;
        a.school = school;
        a.year = year;
        a.role = role_from_string(st.text(0)).value_or(Role::subject_teacher);
        a.person = st.text(1);
        if (auto c = st.text(2); !c.empty()) a.class_name = std::move(c);
        if (auto s = st.text(3); !s.empty()) a.subject = std::move(s);
        out.push_back(std::move(a));
    }
    return out;
}

bool Store::is_assigned(std::string_view school, std::string_view year, Role role,
                        std::string_view person, std::optional<std::string_view> class_name,
                        std::optional<std::string_view> subject) const {
    std::string_view cls = role == Role::principal ? "" : class_name.value_or("");
    std::string_view subj = role == Role::subject_teacher ? subject.value_or("") : "";
    // A teacher role without its class (or subject) can never match a real assignment.
    if (role != Role::principal && cls.empty()) return false;
    if (role == Role::subject_teacher && subj.empty()) return false;
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare(
        "SELECT 1 FROM assignments WHERE school = ?1 AND year = ?2 AND role = ?3 AND "
        "person = ?4 AND class = ?5 AND subject = ?6");
    st.bind(1, school).bind(2, year).bind(3, to_string(role)).bind(4, person);
    st.bind(5, cls).bind(6, subj);
    return st.step();
}

void Store::set_year_lock(std::string_view school, std::string_view year, bool locked) {
    if (school.empty()) throw Error::invalid_parameter("school");
    if (year.empty()) throw Error::invalid_parameter("year");
    std::lock_guard lock(impl_->mutex);
    if (locked) {
        impl_->db
            .prepare(
                "INSERT OR IGNORE INTO year_locks (school, year, locked_at) VALUES (?1, ?2, ?3)")
            .bind(1, school)
            .bind(2, year)
            .bind(3, now_rfc3339())
            .run();
    } else {
        impl_->db.prepare("DELETE FROM year_locks WHERE school = ?1 AND year = ?2")
            .bind(1, school)
            .bind(2, year)
            .run();
    }
}

bool Store::is_year_locked(std::string_view school, std::string_view year) const {
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare("SELECT 1 FROM year_locks WHERE school = ?1 AND year = ?2");
    st.bind(1, school).bind(2, year);
    return st.step();
}

}  // namespace hbsd::store
