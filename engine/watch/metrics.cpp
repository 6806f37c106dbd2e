#include "engine/watch/metrics.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace berth::watch {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char ch : value) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '"') {
      out += "\\\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string format_sample(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", value);
  }
  return buf;
}

void Metrics::declare(const std::string& name, MetricType type, std::string help) {
  const std::lock_guard lock(mutex_);
  auto& f = families_[name];
  f.type = type;
  f.help = std::move(help);
}

Metrics::Family& Metrics::family(const std::string& name, MetricType expected) {
  const auto it = families_.find(name);
  if (it == families_.end() || it->second.type != expected) {
    throw std::logic_error("metric " + name + " is not declared as a " +
                           (expected == MetricType::counter ? "counter" : "gauge"));
  }
  return it->second;
}

void Metrics::add(const std::string& name, const Labels& labels, double by) {
  const std::lock_guard lock(mutex_);
  if (by < 0) throw std::logic_error("counter " + name + " cannot go down");
  family(name, MetricType::counter).samples[labels] += by;
}

void Metrics::set(const std::string& name, const Labels& labels, double value) {
  const std::lock_guard lock(mutex_);
  family(name, MetricType::gauge).samples[labels] = value;
}

void Metrics::clear(const std::string& name) {
  const std::lock_guard lock(mutex_);
  family(name, MetricType::gauge).samples.clear();
}

double Metrics::value(const std::string& name, const Labels& labels) const {
  const std::lock_guard lock(mutex_);
  const auto f = families_.find(name);
  if (f == families_.end()) return 0;
  const auto s = f->second.samples.find(labels);
  return s == f->second.samples.end() ? 0 : s->second;
}

std::string Metrics::render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + (f.type == MetricType::counter ? " counter\n" : " gauge\n");
    for (const auto& [labels, value] : f.samples) {
      out += name;
      if (!labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < labels.size(); ++i) {
          if (i > 0) out += ',';
          out += labels[i].first + "=\"" + escape_label_value(labels[i].second) + "\"";
        }
        out += '}';
      }
      out += ' ' + format_sample(value) + '\n';
    }
  }
  return out;
}

}  // namespace berth::watch
