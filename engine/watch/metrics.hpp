#pragma once
// The numbers `berth watch` serves on GET /metrics, in the Prometheus text exposition format
// (version 0.0.4): families declared once with their type and help, samples by label set.
// Thread-safe: the run loop writes while the HTTP server renders.

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace berth::watch {

// Label name -> value, in the order they are printed.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { counter, gauge };

class Metrics {
 public:
  // Declares a family; samples of an undeclared family are refused (a bug, not input).
  void declare(const std::string& name, MetricType type, std::string help);
  // Counter: adds `by` (>= 0) to the sample.
  void add(const std::string& name, const Labels& labels, double by = 1);
  // Gauge: sets the sample.
  void set(const std::string& name, const Labels& labels, double value);
  // Gauge: removes every sample of the family (one rebuilt from scratch each run).
  void clear(const std::string& name);
  [[nodiscard]] double value(const std::string& name, const Labels& labels) const;
  [[nodiscard]] std::string render() const;

 private:
  struct Family {
    MetricType type = MetricType::gauge;
    std::string help;
    std::map<Labels, double> samples;
  };
  Family& family(const std::string& name, MetricType expected);
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

// A label value as the format wants it: backslash, double quote and line feed escaped.
[[nodiscard]] std::string escape_label_value(std::string_view value);
// A sample value: integers without a fraction, NaN, +Inf, -Inf, else the shortest exact form.
[[nodiscard]] std::string format_sample(double value);

}  // namespace berth::watch
