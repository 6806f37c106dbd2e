#include "engine/config/document.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "engine/util/printable.hpp"

namespace berth::config {
namespace {

// Anchors and aliases can make a small file expand into a huge tree ("billion laughs"). Without
// aliases every value takes at least one byte of text, so a file may expand to twice its size (or
// 10000 values, for small files with a few reused anchors) and no more.
constexpr std::size_t min_node_budget = 10000;
constexpr std::size_t max_depth = 64;

diag::SourceLocation location(const std::string& file, const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) return {file, 0, 0};
  return {file, mark.line + 1, mark.column + 1};
}

bool is_core_null(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

bool all_of_set(std::string_view s, std::string_view set) {
  return !s.empty() && s.find_first_not_of(set) == std::string_view::npos;
}

std::optional<std::int64_t> parse_int(std::string_view digits, int base) {
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return v;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_core_float(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
  const auto exponent = s.find_first_of("eE");
  std::string_view mantissa = s.substr(0, exponent);
  if (exponent != std::string_view::npos) {
    std::string_view e = s.substr(exponent + 1);
    if (!e.empty() && (e.front() == '-' || e.front() == '+')) e.remove_prefix(1);
    if (!all_of_set(e, "0123456789")) return false;
  }
  const auto dot = mantissa.find('.');
  if (dot == std::string_view::npos) return all_of_set(mantissa, "0123456789");
  const std::string_view whole = mantissa.substr(0, dot);
  const std::string_view fraction = mantissa.substr(dot + 1);
  if (!whole.empty() && !all_of_set(whole, "0123456789")) return false;
  if (!fraction.empty() && !all_of_set(fraction, "0123456789")) return false;
  return !whole.empty() || !fraction.empty();
}

// A plain (unquoted) scalar typed by the YAML 1.2 core schema. Unlike YAML 1.1, yes/no/on/off stay
// strings, so `boot.autostart: yes` is passed on as written.
nlohmann::json resolve_plain(const std::string& s, bool interpolated) {
  if (is_core_null(s)) return interpolated ? nlohmann::json(s) : nlohmann::json(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const std::string_view v{s};
  const std::string_view unsigned_part = (v.front() == '-' || v.front() == '+') ? v.substr(1) : v;
  if (all_of_set(unsigned_part, "0123456789")) {
    if (auto n = parse_int(v, 10)) return *n;
    return std::strtod(s.c_str(), nullptr);  // too large for 64 bits: still a number
  }
  if (v.starts_with("0o") && all_of_set(v.substr(2), "01234567")) {
    if (auto n = parse_int(v.substr(2), 8)) return *n;
    return s;
  }
  if (v.starts_with("0x") && all_of_set(v.substr(2), "0123456789abcdefABCDEF")) {
    if (auto n = parse_int(v.substr(2), 16)) return *n;
    return s;
  }
  if (is_core_float(v)) return std::strtod(s.c_str(), nullptr);
  if (unsigned_part == ".inf" || unsigned_part == ".Inf" || unsigned_part == ".INF") {
    return v.front() == '-' ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  if (v == ".nan" || v == ".NaN" || v == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

std::string variables_of(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& v : names) out += (out.empty() ? "" : ", ") + std::string{"${env:"} + v + "}";
  return out;
}

std::string line_of(const diag::SourceLocation& where) {
  return "line " + std::to_string(where.line) + ", column " + std::to_string(where.column);
}

class Converter {
 public:
  Converter(Document& doc, const EnvLookup& env, diag::Diagnostics& out, std::size_t text_size)
      : doc_(doc), env_(env), out_(out), max_nodes_(std::max(min_node_budget, 2 * text_size)) {}

  // Returns false when the document is too large to convert; the problem is already reported.
  bool convert(const YAML::Node& node, KeyPath& path, nlohmann::json& into,
               const std::optional<diag::SourceLocation>& key_where) {
    if (++nodes_ > max_nodes_ || path.size() > max_depth) {
      if (!too_large_reported_) {
        out_.error(nodes_ > max_nodes_ ? "the document is too large once its aliases are expanded"
                                       : "the document is nested too deeply (more than 64 levels)",
                   doc_.display(path), location(doc_.file, node.Mark()),
                   "a fleet file needs neither; check anchors and aliases (&name, *name)");
        too_large_reported_ = true;
      }
      return false;
    }
    NodeOrigin origin;
    origin.key = key_where;
    origin.value = location(doc_.file, node.Mark());
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        // An empty value (`key:`) has its mark on the next token; its key is the better place.
        if (key_where) origin.value = *key_where;
        into = nullptr;
        break;
      case YAML::NodeType::Scalar: into = scalar(node, path, origin); break;
      case YAML::NodeType::Sequence: {
        into = nlohmann::json::array();
        std::size_t index = 0;
        for (const auto& item : node) {
          path.push_back(std::to_string(index++));
          nlohmann::json child;
          const bool ok = convert(item, path, child, std::nullopt);
          path.pop_back();
          if (!ok) return false;
          into.push_back(std::move(child));
        }
        break;
      }
      case YAML::NodeType::Map:
        into = nlohmann::json::object();
        if (!map(node, path, into)) return false;
        break;
    }
    doc_.origins[path] = std::move(origin);
    return true;
  }

 private:
  nlohmann::json scalar(const YAML::Node& node, const KeyPath& path, NodeOrigin& origin) {
    const std::string& raw = node.Scalar();
    std::string text = raw;
    bool interpolated = false;
    if (raw.find('$') != std::string::npos) {
      Interpolation result = interpolate(raw, env_);
      for (const auto& e : result.errors) out_.error(e.summary, doc_.display(path), origin.value, e.detail);
      if (!result.errors.empty()) doc_.broken.insert(path);
      interpolated = !result.variables.empty();
      origin.env_vars = std::move(result.variables);
      for (const auto& name : origin.env_vars) {
        if (auto value = env_(name)) origin.env_values.push_back(std::move(*value));
      }
      text = std::move(result.text);
    }
    // LXD's API is JSON, which is UTF-8 only: a value that is not cannot be passed on (nor shown).
    if (!util::is_utf8(text) && !doc_.broken.contains(path)) {
      out_.error(interpolated ? "the value of " + variables_of(origin.env_vars) + " is not valid UTF-8"
                              : "the value is not valid UTF-8 text",
                 doc_.display(path), origin.value,
                 interpolated ? "set the variable to UTF-8 text" : "save the file as UTF-8");
      doc_.broken.insert(path);
    }
    origin.text = text;
    // "?" is the tag of a plain scalar; quoted and block scalars ("!") and explicit tags are strings.
    if (node.Tag() == "?") return resolve_plain(text, interpolated);
    return text;
  }

  bool map(const YAML::Node& node, KeyPath& path, nlohmann::json& into) {
    std::map<std::string, diag::SourceLocation> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: yaml-cpp's iterator hands out a temporary pair, so references to it would dangle.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const diag::SourceLocation key_where = location(doc_.file, key.Mark());
      if (!key.IsScalar()) {
        out_.error(key.IsNull() ? "a key is empty" : "a key must be a string, not a list or a map", doc_.display(path),
                   key_where, "write `name: value`");
        continue;
      }
      const std::string& name = key.Scalar();
      if (!util::is_utf8(name)) {
        out_.error("a key is not valid UTF-8 text", doc_.display(path), key_where, "save the file as UTF-8");
        continue;
      }
      if (name == "<<" && key.Tag() == "?") {
        out_.error("YAML merge keys (<<) are not supported", doc_.display(path), key_where,
                   "write the keys out; anchors and aliases (&name, *name) of whole values do work");
        continue;
      }
      if (const auto first = seen.find(name); first != seen.end()) {
        out_.error("duplicate key " + quote(name), doc_.display(path), key_where,
                   "it is first defined at " + line_of(first->second) + "; a key may appear only once in a map");
        continue;
      }
      seen.emplace(name, key_where);
      path.push_back(name);
      nlohmann::json child;
      const bool ok = convert(value, path, child, key_where);
      path.pop_back();
      if (!ok) return false;
      into[name] = std::move(child);
    }
    return true;
  }

  Document& doc_;
  const EnvLookup& env_;
  diag::Diagnostics& out_;
  std::size_t max_nodes_;
  std::size_t nodes_ = 0;
  bool too_large_reported_ = false;
};

bool is_index(const nlohmann::json& parent) {
  return parent.is_array();
}

}  // namespace

std::string quote(std::string_view text) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict, bug 105329) on "'" + s + "'".
  std::string out = "'";
  out += util::printable(text);
  out += '\'';
  return out;
}

namespace {

// Walks `path` from `root`: object keys by name, array elements by decimal index. `Json` is
// nlohmann::json or its const form, so both find() overloads share one walk.
template <class Json>
Json* find_in(Json& root, const KeyPath& path) {
  Json* node = &root;
  for (const auto& segment : path) {
    if (node->is_object()) {
      const auto it = node->find(segment);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array()) {
      std::size_t index = 0;
      const auto [end, ec] = std::from_chars(segment.data(), segment.data() + segment.size(), index);
      if (ec != std::errc{} || end != segment.data() + segment.size() || index >= node->size()) return nullptr;
      node = &(*node)[index];
    } else {
      return nullptr;
    }
  }
  return node;
}

constexpr std::string_view fix_the_syntax =
    "fix the syntax here (indent with spaces, not tabs; quote values that contain ': ' or start with a special "
    "character)";

// Records where each document of a YAML stream starts, and where its content starts.
class DocumentStarts final : public YAML::EventHandler {
 public:
  struct Start {
    YAML::Mark document;
    std::optional<YAML::Mark> content;
  };
  std::vector<Start> starts;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back({mark, std::nullopt}); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { content(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { content(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                const std::string& /*value*/) override {
    content(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                       YAML::EmitterStyle::value /*style*/) override {
    content(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  YAML::EmitterStyle::value /*style*/) override {
    content(mark);
  }
  void OnMapEnd() override {}

 private:
  void content(const YAML::Mark& mark) {
    if (!starts.empty() && !starts.back().content) starts.back().content = mark;
  }
};

struct YamlDocuments {
  std::optional<YAML::Node> first;   // none when the text holds no document
  std::optional<YAML::Mark> second;  // where a second document's content starts
  std::optional<YAML::Mark> stuck;   // a token no value can start with: the parser cannot go on
};

// The first document of `text`, and whether more follow. Not YAML::LoadAll: in yaml-cpp 0.7 (Debian
// 12) a token no value can start with (`- a` then `,` on the next line) makes every further
// document an empty one at that same token, and LoadAll collects them until memory runs out
// (yaml-cpp issue 1040, fixed after 0.8). So the first document is built on its own, and the
// stream is only scanned, three documents at most, for a second one and for a parser that does not
// advance. Throws YAML::Exception for malformed YAML.
YamlDocuments read_documents(const std::string& text) {
  YamlDocuments result;
  DocumentStarts scan;
  std::istringstream in{text};
  YAML::Parser parser{in};
  for (int i = 0; i < 3 && parser.HandleNextDocument(scan); ++i) {
  }
  const auto& starts = scan.starts;
  for (std::size_t i = 1; i < starts.size(); ++i) {
    if (starts[i].document.pos == starts[i - 1].document.pos) {
      result.stuck = starts[i].document;
      return result;
    }
  }
  if (starts.empty()) return result;
  result.first = YAML::Load(text);
  if (starts.size() > 1) result.second = starts[1].content.value_or(starts[1].document);
  return result;
}

}  // namespace

const nlohmann::json* Document::find(const KeyPath& path) const {
  return find_in(root, path);
}

nlohmann::json* Document::find(const KeyPath& path) {
  return find_in(root, path);
}

const NodeOrigin* Document::origin(const KeyPath& path) const {
  const auto it = origins.find(path);
  return it == origins.end() ? nullptr : &it->second;
}

diag::SourceLocation Document::value_where(const KeyPath& path) const {
  KeyPath p = path;
  while (true) {
    if (const auto* o = origin(p)) return o->value;
    if (p.empty()) return {file, 1, 1};
    p.pop_back();
  }
}

diag::SourceLocation Document::key_where(const KeyPath& path) const {
  if (const auto* o = origin(path); o != nullptr && o->key) return *o->key;
  return value_where(path);
}

std::string Document::display(const KeyPath& path) const {
  std::string out;
  const nlohmann::json* node = &root;
  for (const auto& segment : path) {
    const bool index = node != nullptr && is_index(*node);
    if (index) {
      out += '[' + segment + ']';
    } else {
      if (!out.empty()) out += '.';
      out += segment;
    }
    if (node != nullptr) {
      if (node->is_object() && node->contains(segment)) {
        node = &(*node)[segment];
      } else if (index) {
        std::size_t i = 0;
        std::from_chars(segment.data(), segment.data() + segment.size(), i);
        node = i < node->size() ? &(*node)[i] : nullptr;
      } else {
        node = nullptr;
      }
    }
  }
  return out;
}

std::string Document::quoted(const KeyPath& path) const {
  if (const auto* o = origin(path)) {
    if (!o->env_vars.empty()) return "the value of " + variables_of(o->env_vars);
    return quote(o->text);
  }
  if (const auto* v = find(path); v != nullptr && v->is_string()) return quote(v->get<std::string>());
  return "the value";
}

std::optional<Document> parse_document(std::string_view text, const std::string& file, const EnvLookup& env,
                                       diag::Diagnostics& out) {
  YamlDocuments documents;
  try {
    documents = read_documents(std::string{text});
  } catch (const YAML::ParserException& e) {
    out.error("malformed YAML: " + e.msg, {}, location(file, e.mark), std::string{fix_the_syntax});
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    out.error("malformed YAML: " + e.msg, {}, location(file, e.mark));
    return std::nullopt;
  }
  if (documents.stuck) {
    const auto pos = static_cast<std::size_t>(std::max(documents.stuck->pos, 0));
    const char c = pos < text.size() ? text[pos] : ' ';
    out.error(std::string{"malformed YAML: "} +
                  (c > ' ' && c < 0x7f ? "unexpected " + quote(std::string_view{&c, 1}) : "unexpected text"),
              {}, location(file, *documents.stuck), std::string{fix_the_syntax});
    return std::nullopt;
  }
  Document doc;
  doc.file = file;
  if (documents.second) {
    out.error("the file holds more than one YAML document", {}, location(file, *documents.second),
              "a fleet file is a single document: remove the '---' separator and what follows it");
  }
  KeyPath path;
  Converter converter{doc, env, out, text.size()};
  if (!documents.first) {
    doc.root = nullptr;
    doc.origins[path] = NodeOrigin{{file, 1, 1}, std::nullopt, {}, {}, {}};
  } else if (!converter.convert(*documents.first, path, doc.root, std::nullopt)) {
    return std::nullopt;
  }
  return doc;
}

}  // namespace berth::config
