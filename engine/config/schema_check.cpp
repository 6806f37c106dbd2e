#include "engine/config/schema_check.hpp"

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <tuple>

#include "engine/config/names.hpp"
#include "engine/config/schema.hpp"
#include "engine/config/url.hpp"

namespace berth::config {
namespace {

// The schema as ordered JSON, for reading it (property order is the order a user wants to see
// keys listed in); valijson compiles its own copy.
using SchemaJson = nlohmann::ordered_json;

const SchemaJson& schema_json() {
  static const SchemaJson schema = SchemaJson::parse(fleet_schema_text());
  return schema;
}

const valijson::Schema& compiled_schema() {
  static const nlohmann::json source = nlohmann::json::parse(fleet_schema_text());
  static const std::unique_ptr<valijson::Schema> schema = [] {
    auto s = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser{valijson::SchemaParser::kDraft7};
    parser.populateSchema(valijson::adapters::NlohmannJsonAdapter{source}, *s);
    return s;
  }();
  return *schema;
}

// Patterns of the schema, compiled once per process.
const std::regex& pattern_regex(const std::string& pattern) {
  static std::mutex mutex;
  static std::map<std::string, std::regex> compiled;
  const std::lock_guard lock{mutex};
  auto it = compiled.find(pattern);
  if (it == compiled.end()) it = compiled.emplace(pattern, std::regex{pattern}).first;
  return it->second;
}

// ---- Reading the schema at a position of the document ----

struct SchemaNode {
  const SchemaJson* node = nullptr;
  std::string definition;  // name under definitions/ when reached through $ref
};
using SchemaNodes = std::vector<SchemaNode>;

// `s` itself, with $ref followed and the branches of allOf/anyOf/oneOf added.
void expand(const SchemaJson* s, const std::string& definition, SchemaNodes& out, int depth = 0) {
  if (s == nullptr || !s->is_object() || depth > 32) return;
  if (const auto ref = s->find("$ref"); ref != s->end() && ref->is_string()) {
    constexpr std::string_view prefix = "#/definitions/";
    const auto target = ref->get<std::string>();
    if (target.starts_with(prefix)) {
      const std::string name = target.substr(prefix.size());
      const auto& definitions = schema_json().at("definitions");
      if (const auto d = definitions.find(name); d != definitions.end()) expand(&*d, name, out, depth + 1);
    }
    return;
  }
  out.push_back({s, definition});
  for (const char* combinator : {"allOf", "anyOf", "oneOf"}) {
    if (const auto c = s->find(combinator); c != s->end() && c->is_array()) {
      for (const auto& branch : *c) expand(&branch, {}, out, depth + 1);
    }
  }
}

SchemaNodes children(const SchemaNodes& parents, const nlohmann::json& parent_value, const std::string& segment) {
  SchemaNodes out;
  for (const auto& p : parents) {
    const SchemaJson& s = *p.node;
    if (parent_value.is_array()) {
      if (const auto items = s.find("items"); items != s.end()) expand(&*items, {}, out);
      continue;
    }
    if (const auto props = s.find("properties"); props != s.end() && props->contains(segment)) {
      expand(&props->at(segment), {}, out);
      continue;
    }
    if (const auto extra = s.find("additionalProperties"); extra != s.end() && extra->is_object()) {
      expand(&*extra, {}, out);
    }
  }
  return out;
}

SchemaNodes schemas_at(const Document& doc, const KeyPath& path) {
  SchemaNodes current;
  expand(&schema_json(), {}, current);
  KeyPath prefix;
  for (const auto& segment : path) {
    const nlohmann::json* parent = doc.find(prefix);
    if (parent == nullptr) return {};
    current = children(current, *parent, segment);
    prefix.push_back(segment);
  }
  return current;
}

std::vector<std::string> schema_types(const SchemaNodes& nodes) {
  std::vector<std::string> types;
  auto add = [&](const std::string& t) {
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  };
  for (const auto& n : nodes) {
    const auto t = n.node->find("type");
    if (t == n.node->end()) continue;
    if (t->is_string()) add(t->get<std::string>());
    if (t->is_array()) {
      for (const auto& each : *t) add(each.get<std::string>());
    }
  }
  return types;
}

// Keys a closed map (additionalProperties: false) accepts, in schema order.
std::vector<std::string> allowed_keys(const SchemaNodes& nodes) {
  std::vector<std::string> keys;
  for (const auto& n : nodes) {
    const auto extra = n.node->find("additionalProperties");
    if (extra == n.node->end() || !extra->is_boolean() || extra->get<bool>()) continue;
    if (const auto props = n.node->find("properties"); props != n.node->end()) {
      for (const auto& [key, value] : props->items()) {
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
      }
    }
  }
  return keys;
}

std::string property_description(const SchemaNodes& nodes, const std::string& key) {
  for (const auto& n : nodes) {
    const auto props = n.node->find("properties");
    if (props == n.node->end() || !props->contains(key)) continue;
    const auto& p = props->at(key);
    if (const auto d = p.find("description"); d != p.end()) return d->get<std::string>();
  }
  return {};
}

// ---- Wording ----

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ",
                 std::string_view last = ", ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += (i + 1 == items.size()) ? last : separator;
    out += items[i];
  }
  return out;
}

std::string type_phrase(const std::string& type) {
  if (type == "string") return "a string";
  if (type == "integer") return "an integer";
  if (type == "number") return "a number";
  if (type == "boolean") return "a boolean (true or false)";
  if (type == "object") return "a map";
  if (type == "array") return "a list";
  if (type == "null") return "nothing";
  return type;
}

std::string actual_phrase(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a fractional number";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::object: return "a map";
    case nlohmann::json::value_t::array: return "a list";
    case nlohmann::json::value_t::null: return "an empty value";
    default: return "something else";
  }
}

// How to name the offending value in a message: 'text', or where it came from when that was
// the environment (its text may be a secret).
std::string subject(const Document& doc, const KeyPath& path) {
  const auto* o = doc.origin(path);
  if (o != nullptr && !o->env_vars.empty()) return doc.quoted(path);  // "the value of ${env:X}"
  if (o != nullptr) return quote(o->text);
  return "the value";
}

std::string written(const Document& doc, const KeyPath& path) {
  const auto* o = doc.origin(path);
  if (o == nullptr) return "?";
  if (!o->env_vars.empty()) return doc.quoted(path);
  return o->text;
}

using ProblemFn = std::optional<std::string> (*)(std::string_view);

struct NameRule {
  std::string_view thing;
  ProblemFn problem;
  std::string_view rule;
};

std::optional<NameRule> name_rule(std::string_view definition) {
  if (definition == "instanceName") {
    return NameRule{"container name", instance_name_problem,
                    "LXD instance names are 1-63 ASCII letters, digits and hyphens; they start with a letter and do "
                    "not end with a hyphen"};
  }
  if (definition == "remoteName") {
    return NameRule{"remote name", remote_name_problem,
                    "remote names are 1-63 ASCII letters, digits, '.', '-' and '_', not starting with '.' or '-'"};
  }
  if (definition == "projectName") {
    return NameRule{"project name", project_name_problem,
                    "project names are 1-63 ASCII letters, digits, '.' and '-', not starting with '.' or '-'"};
  }
  if (definition == "imageName") {
    return NameRule{"image name", local_name_problem, "image names are 1-63 ASCII letters, digits, '-' and '_'"};
  }
  if (definition == "placementName") {
    return NameRule{"placement name", local_name_problem,
                    "placement names are 1-63 ASCII letters, digits, '-' and '_'"};
  }
  if (definition == "groupName") {
    return NameRule{"anti-affinity group", local_name_problem,
                    "anti-affinity groups are 1-63 ASCII letters, digits, '-' and '_'"};
  }
  if (definition == "labelName") {
    return NameRule{"label name", label_name_problem,
                    "label names are 1-63 ASCII letters, digits, '.', '_', '/' and '-', starting with a letter or a "
                    "digit"};
  }
  if (definition == "snapshotName") {
    return NameRule{"snapshot name", snapshot_name_problem,
                    "LXD snapshot names are 1-63 characters without whitespace or '/', and not '.' or '..'"};
  }
  if (definition == "profileName") {
    return NameRule{"profile name", profile_name_problem,
                    "profile names are 1-63 characters without whitespace or '/', and not '.' or '..'"};
  }
  if (definition == "alias") {
    return NameRule{"image alias", alias_problem, "an alias is 1-255 characters without whitespace or ':'"};
  }
  if (definition == "configKey") {
    return NameRule{"config key", config_key_problem,
                    "config keys are LXD's (limits.cpu, security.nesting, user.NAME, ...); volatile.* and "
                    "user.berth.* cannot be declared"};
  }
  if (definition == "deviceName") {
    return NameRule{"device name", device_name_problem,
                    "LXD device names are 1-63 ASCII letters, digits and - _ . : /, not starting with '.'"};
  }
  if (definition == "deviceKey") {
    return NameRule{"device option", device_key_problem, "device options are names such as type, path or pool"};
  }
  return std::nullopt;
}

struct Message {
  std::string summary;
  std::string detail;
};

Message name_message(const NameRule& rule, std::string_view thing, const std::string& shown, std::string_view name) {
  const auto reason = rule.problem(name);
  return {"invalid " + std::string{thing} + " " + shown + (reason ? ": " + *reason : std::string{}),
          std::string{rule.rule}};
}

Message url_message(const Document& doc, const KeyPath& path, const std::string& value) {
  auto [summary, detail] = bad_url_message(doc, path, value);
  return {std::move(summary), std::move(detail)};
}

Message pattern_message(const Document& doc, const KeyPath& path, const std::string& definition,
                        const std::string& value) {
  const std::string shown = subject(doc, path);
  if (definition == "url") return url_message(doc, path, value);
  if (definition == "fingerprint") {
    return {"invalid fingerprint " + shown,
            "expected sha256: and 64 hex digits, 64 hex digits, or 32 colon-separated hex pairs (as "
            "`openssl x509 -noout -fingerprint -sha256` prints them)"};
  }
  if (definition == "imageRef") {
    std::string reason;
    if (const auto colon = value.find(':'); colon != std::string::npos) {
      if (auto p = remote_name_problem(value.substr(0, colon))) {
        reason = ": the remote part " + *p;
      } else if (auto q = alias_problem(value.substr(colon + 1))) {
        reason = ": the alias " + *q;
      }
    } else if (auto p = local_name_problem(value)) {
      reason = ": an image name " + *p;
    }
    return {"invalid image " + shown + reason,
            "write the name of an image declared under images:, or REMOTE:ALIAS with a remote declared under "
            "remotes:"};
  }
  if (definition == "copySource") {
    std::string reason;
    const auto slash = value.find('/');
    if (auto p = instance_name_problem(value.substr(0, slash))) {
      reason = ": the container name " + *p;
    } else if (slash != std::string::npos) {
      if (auto q = snapshot_name_problem(value.substr(slash + 1))) reason = ": the snapshot name " + *q;
    }
    return {"invalid copy_of " + shown + reason,
            "write CONTAINER or CONTAINER/SNAPSHOT, naming another container of this file"};
  }
  if (auto rule = name_rule(definition)) {
    const std::string_view thing = path == KeyPath{"name"} ? std::string_view{"fleet name"} : rule->thing;
    return name_message(*rule, thing, shown, value);
  }
  return {"invalid value " + shown, "it does not match the pattern the schema requires"};
}

std::string type_detail(const std::vector<std::string>& expected, const nlohmann::json& actual) {
  const bool wants_scalar = std::any_of(expected.begin(), expected.end(), [](const std::string& t) {
    return t == "integer" || t == "number" || t == "boolean";
  });
  const bool wants_string = std::find(expected.begin(), expected.end(), "string") != expected.end();
  const bool wants_map = std::find(expected.begin(), expected.end(), "object") != expected.end();
  const bool wants_list = std::find(expected.begin(), expected.end(), "array") != expected.end();
  if (actual.is_null()) return "give it a value, or remove the key";
  if (actual.is_string() && wants_scalar && !wants_string) return "write it without quotes";
  if (actual.is_array() && wants_map) return "write `key: value` entries here, not a list of `- item`s";
  if (!actual.is_array() && wants_list && !wants_map) return "write a list: [a, b], or one `- item` per line";
  if (actual.is_object() && wants_string) return "write a single value here; check the indentation of the lines below";
  return {};
}

// ---- valijson's errors ----

enum class Kind { wrapper, type, unknown_key, required, pattern, enum_value, const_value, range, too_few, other };

struct RawError {
  KeyPath path;
  Kind kind = Kind::other;
  std::string argument;  // the missing key; the least count, for too_few
  std::string text;      // valijson's description, for the kinds berth does not reword
};

RawError classify(const valijson::ValidationResults::Error& e) {
  RawError r;
  for (const auto& c : e.context) {
    if (c == "<root>") continue;
    r.path.push_back(c.size() >= 2 && c.front() == '[' && c.back() == ']' ? c.substr(1, c.size() - 2) : c);
  }
  const std::string& d = e.description;
  r.text = d;
  auto between = [&](std::string_view open, std::string_view close) {
    const auto a = d.find(open);
    if (a == std::string::npos) return std::string{};
    const auto start = a + open.size();
    const auto b = d.find(close, start);
    return d.substr(start, b == std::string::npos ? std::string::npos : b - start);
  };
  if (d.starts_with("Failed to validate") || d.starts_with("Failed to any") || d.starts_with("Target should not") ||
      d.starts_with("Cannot validate")) {
    r.kind = Kind::wrapper;
  } else if (d.starts_with("Value type not permitted")) {
    r.kind = Kind::type;
  } else if (d.starts_with("Object contains a property that could not be validated")) {
    r.kind = Kind::unknown_key;
  } else if (d.starts_with("Missing required property")) {
    r.kind = Kind::required;
    r.argument = between("'", "'");
  } else if (d.starts_with("Failed to match regex")) {
    r.kind = Kind::pattern;
  } else if (d.starts_with("Failed to match against any enum")) {
    r.kind = Kind::enum_value;
  } else if (d.starts_with("Failed to match expected value set by 'const'")) {
    r.kind = Kind::const_value;
  } else if (d.starts_with("Expected number")) {
    r.kind = Kind::range;
  } else if (d.starts_with("Array should contain no fewer than") || d.starts_with("Object should have no fewer than") ||
             d.starts_with("String should be no fewer than")) {
    r.kind = Kind::too_few;
    r.argument = between("no fewer than ", " ");
  }
  return r;
}

bool is_prefix(const KeyPath& prefix, const KeyPath& path) {
  return prefix.size() <= path.size() && std::equal(prefix.begin(), prefix.end(), path.begin());
}

class Reporter {
 public:
  Reporter(const Document& doc, diag::Diagnostics& out, std::set<KeyPath>& flagged)
      : doc_(doc), out_(out), flagged_(flagged) {}

  void report(const RawError& e) {
    if (doc_.broken.contains(e.path)) return;  // its interpolation failed; that is the error
    switch (e.kind) {
      case Kind::wrapper: return;
      case Kind::type: return type_error(e.path);
      case Kind::unknown_key: return unknown_keys(e.path);
      case Kind::required: return missing_key(e.path, e.argument);
      case Kind::pattern: return pattern_error(e.path);
      case Kind::enum_value: return enum_error(e.path);
      case Kind::const_value: return const_error(e.path);
      case Kind::range: return range_error(e.path);
      case Kind::too_few: return too_few_error(e.path, e.argument);
      case Kind::other:
        flagged_.insert(e.path);
        out_.error(e.text, doc_.display(e.path), doc_.value_where(e.path));
        return;
    }
  }

 private:
  void error(const KeyPath& path, diag::SourceLocation where, Message m) {
    flagged_.insert(path);
    out_.error(std::move(m.summary), doc_.display(path), std::move(where), std::move(m.detail));
  }

  void type_error(const KeyPath& path) {
    const nlohmann::json* value = doc_.find(path);
    if (value == nullptr) return;
    std::vector<std::string> expected = schema_types(schemas_at(doc_, path));
    expected.erase(std::remove(expected.begin(), expected.end(), "null"), expected.end());
    if (std::find(expected.begin(), expected.end(), "number") != expected.end()) {
      expected.erase(std::remove(expected.begin(), expected.end(), "integer"), expected.end());
    }
    std::vector<std::string> phrases;
    for (const auto& t : expected) phrases.push_back(type_phrase(t));
    error(
        path, doc_.value_where(path),
        {"expected " + join(phrases, ", ", " or ") + ", got " + actual_phrase(*value), type_detail(expected, *value)});
  }

  void unknown_keys(const KeyPath& path) {
    const nlohmann::json* value = doc_.find(path);
    if (value == nullptr || !value->is_object()) return;
    const std::vector<std::string> allowed = allowed_keys(schemas_at(doc_, path));
    for (const auto& [key, child] : value->items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      KeyPath child_path = path;
      child_path.push_back(key);
      std::string detail;
      if (auto near = closest(key, allowed)) {
        detail = "did you mean '" + *near + "'?";
      } else {
        detail = "remove it, or check its indentation: it may belong to another level";
      }
      error(child_path, doc_.key_where(child_path),
            {"unknown key " + quote(key) + " (expected one of: " + join(allowed) + ")", detail});
    }
  }

  void missing_key(const KeyPath& path, const std::string& key) {
    std::string detail = property_description(schemas_at(doc_, path), key);
    if (!detail.empty()) detail = key + ": " + detail;
    const diag::SourceLocation where = path.empty() ? diag::SourceLocation{doc_.file, 1, 1} : doc_.key_where(path);
    flagged_.insert(path);
    out_.error("missing required key " + quote(key), doc_.display(path), where, detail);
  }

  void pattern_error(const KeyPath& path) {
    const nlohmann::json* value = doc_.find(path);
    if (value == nullptr) return;
    // valijson reports failed patterns of values only (keys: check_key_names); find which pattern.
    if (value->is_string()) {
      const auto text = value->get<std::string>();
      for (const auto& n : schemas_at(doc_, path)) {
        const auto pattern = n.node->find("pattern");
        if (pattern == n.node->end()) continue;
        if (std::regex_search(text, pattern_regex(pattern->get<std::string>()))) continue;
        return error(path, doc_.value_where(path), pattern_message(doc_, path, n.definition, text));
      }
    }
    error(path, doc_.value_where(path), {"invalid value " + subject(doc_, path), {}});
  }

 public:
  // valijson checks propertyNames but reports nothing about which key failed (only that the
  // parent did not validate), so berth checks map keys against propertyNames itself.
  void check_key_names(const KeyPath& path, const nlohmann::json& value) {
    if (value.is_array()) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        KeyPath item = path;
        item.push_back(std::to_string(i));
        check_key_names(item, value[i]);
      }
      return;
    }
    if (!value.is_object()) return;
    SchemaNodes name_schemas;
    for (const auto& n : schemas_at(doc_, path)) {
      if (const auto names = n.node->find("propertyNames"); names != n.node->end()) expand(&*names, {}, name_schemas);
    }
    for (const auto& [key, child] : value.items()) {
      KeyPath child_path = path;
      child_path.push_back(key);
      for (const auto& ns : name_schemas) {
        const auto pattern = ns.node->find("pattern");
        if (pattern == ns.node->end() || std::regex_search(key, pattern_regex(pattern->get<std::string>()))) continue;
        if (auto rule = name_rule(ns.definition)) {
          error(child_path, doc_.key_where(child_path), name_message(*rule, rule->thing, quote(key), key));
        } else {
          error(child_path, doc_.key_where(child_path), {"invalid key " + quote(key), {}});
        }
        break;
      }
      check_key_names(child_path, child);
    }
  }

 private:
  void enum_error(const KeyPath& path) {
    std::vector<std::string> values;
    for (const auto& n : schemas_at(doc_, path)) {
      if (const auto e = n.node->find("enum"); e != n.node->end()) {
        for (const auto& v : *e) values.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      }
    }
    const nlohmann::json* value = doc_.find(path);
    std::string detail;
    if (value != nullptr && value->is_string()) {
      if (auto near = closest(value->get<std::string>(), values)) detail = "did you mean '" + *near + "'?";
    }
    if (detail.empty() && !path.empty()) {
      const KeyPath parent{path.begin(), path.end() - 1};
      detail = property_description(schemas_at(doc_, parent), path.back());
    }
    error(path, doc_.value_where(path),
          {"invalid value " + subject(doc_, path) + " (expected one of: " + join(values) + ")", detail});
  }

  void const_error(const KeyPath& path) {
    if (path == KeyPath{"version"}) {
      return error(
          path, doc_.value_where(path),
          {"unsupported version " + written(doc_, path), "this berth reads version 1 fleet files: set version: 1"});
    }
    std::string expected;
    for (const auto& n : schemas_at(doc_, path)) {
      if (const auto c = n.node->find("const"); c != n.node->end()) expected = c->dump();
    }
    error(path, doc_.value_where(path), {"must be " + expected + " (got " + written(doc_, path) + ")", {}});
  }

  void range_error(const KeyPath& path) {
    std::optional<std::string> low;
    std::optional<std::string> high;
    for (const auto& n : schemas_at(doc_, path)) {
      if (const auto m = n.node->find("minimum"); m != n.node->end()) low = m->dump();
      if (const auto m = n.node->find("maximum"); m != n.node->end()) high = m->dump();
    }
    std::string bound = low && high ? "must be from " + *low + " to " + *high
                        : low       ? "must be at least " + *low
                        : high      ? "must be at most " + *high
                                    : std::string{"is out of range"};
    error(path, doc_.value_where(path), {bound + " (got " + written(doc_, path) + ")", {}});
  }

  // minItems, minProperties, minLength: an empty list, map or string where the schema wants one
  // with something in it.
  void too_few_error(const KeyPath& path, const std::string& least) {
    const nlohmann::json* value = doc_.find(path);
    if (value == nullptr) return;
    std::string detail;
    if (!path.empty()) {
      const KeyPath parent{path.begin(), path.end() - 1};
      detail = property_description(schemas_at(doc_, parent), path.back());
    }
    const bool one = least == "1";
    std::string summary;
    if (value->is_array()) {
      summary = value->empty() || one
                    ? "must not be an empty list"
                    : "must list at least " + least + " items (got " + std::to_string(value->size()) + ")";
    } else if (value->is_object()) {
      const std::vector<std::string> keys = allowed_keys(schemas_at(doc_, path));
      if (one && !keys.empty()) {
        summary = "needs at least one of: " + join(keys);
      } else {
        summary = value->empty() || one
                      ? "must not be an empty map"
                      : "must have at least " + least + " entries (got " + std::to_string(value->size()) + ")";
      }
    } else {
      summary = one ? "must not be empty" : "must be at least " + least + " characters long";
    }
    error(path, doc_.value_where(path), {summary, detail});
  }

  const Document& doc_;
  diag::Diagnostics& out_;
  std::set<KeyPath>& flagged_;
};

}  // namespace

std::pair<std::string, std::string> bad_url_message(const Document& doc, const KeyPath& path,
                                                    const std::string& value) {
  const auto reason = url_problem(value);
  const auto* o = doc.origin(path);
  const bool secret = o != nullptr && !o->env_vars.empty();
  return {secret ? doc.quoted(path) + " is not a valid URL" : "invalid URL " + quote(value),
          (reason ? *reason + "; " : std::string{}) + "expected https://HOST[:PORT] or unix:///ABSOLUTE/PATH"};
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = 3;  // at most 2 edits away
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

void coerce_scalars_to_strings(Document& doc) {
  for (const auto& [path, origin] : doc.origins) {
    nlohmann::json* value = doc.find(path);
    if (value == nullptr || !(value->is_number() || value->is_boolean())) continue;
    const std::vector<std::string> types = schema_types(schemas_at(doc, path));
    auto wants = [&](std::string_view t) { return std::find(types.begin(), types.end(), t) != types.end(); };
    const bool accepted = value->is_boolean()          ? wants("boolean")
                          : value->is_number_integer() ? wants("integer") || wants("number")
                                                       : wants("number");
    if (!accepted && wants("string")) *value = origin.text;
  }
}

void check_schema(const Document& doc, diag::Diagnostics& out, std::set<KeyPath>& flagged) {
  valijson::Validator validator{valijson::Validator::kStrongTypes};
  valijson::ValidationResults results;
  validator.validate(compiled_schema(), valijson::adapters::NlohmannJsonAdapter{doc.root}, &results);

  std::vector<RawError> errors;
  for (const auto& e : results) {
    RawError r = classify(e);
    if (r.kind != Kind::wrapper) errors.push_back(std::move(r));
  }

  // A oneOf (snapshots: a list, or a map) fails with one error per branch. When some branch had
  // the right type, its errors (below the value, or about its keys) are the useful ones; the other
  // branch's "wrong type" is noise. When no branch had the right type, one "expected A or B" says
  // it all, and value checks (enum, const, pattern) of the wrong type are noise too.
  std::vector<RawError> kept;
  // Errors that only arise when the value has the type their constraint applies to (a pattern on a
  // string, a range on a number, keys of a map, items of a list): a branch with the right type.
  auto implies_right_type = [](Kind k) {
    return k == Kind::pattern || k == Kind::range || k == Kind::required || k == Kind::unknown_key ||
           k == Kind::too_few;
  };
  // Indexed by path, so that a file with thousands of bad values is sorted out in n log n.
  std::set<KeyPath> type_error_at;
  std::set<KeyPath> right_type_at;
  std::set<KeyPath> error_at;
  for (const auto& e : errors) {
    if (e.kind == Kind::type) type_error_at.insert(e.path);
    if (implies_right_type(e.kind)) right_type_at.insert(e.path);
    error_at.insert(e.path);
  }
  // Paths below `path` sort right after it, so the first path after it tells whether there is one.
  auto error_below = [&](const KeyPath& path) {
    const auto next = error_at.upper_bound(path);
    return next != error_at.end() && next->size() > path.size() && is_prefix(path, *next);
  };
  std::set<std::tuple<Kind, KeyPath, std::string>> seen;
  for (const auto& e : errors) {
    const bool has_type_error = type_error_at.contains(e.path);
    const bool some_branch_matched = error_below(e.path) || right_type_at.contains(e.path);
    if (e.kind == Kind::type && some_branch_matched) continue;
    if ((e.kind == Kind::enum_value || e.kind == Kind::const_value) && has_type_error && !some_branch_matched) continue;
    if (seen.emplace(e.kind, e.path, e.argument).second) kept.push_back(e);
  }

  Reporter reporter{doc, out, flagged};
  for (const auto& e : kept) reporter.report(e);
  reporter.check_key_names({}, doc.root);
}

}  // namespace berth::config
