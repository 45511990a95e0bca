#include "tl/report.hpp"

#include <algorithm>
#include <fstream>
#include <ostream>

#include <fmt/format.h>

#include "tl/error.hpp"
#include "tl/output_file.hpp"

namespace tl {

std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string json_string(std::string_view s) {
  std::string q = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        q += "\\\"";
        break;
      case '\\':
        q += "\\\\";
        break;
      case '\n':
        q += "\\n";
        break;
      case '\r':
        q += "\\r";
        break;
      case '\t':
        q += "\\t";
        break;
      default:
        if (c < 0x20)
          q += fmt::format("\\u{:04x}", c);
        else
          q += static_cast<char>(c);
    }
  }
  return q + "\"";
}

void write_history_csv(const std::filesystem::path& path, std::span<const EpochRecord> history) {
  // Like Keras, a learning_rate column only when something changed the rate (the guard).
  const bool lr = std::any_of(history.begin(), history.end(), [&](const EpochRecord& e) {
    return e.learning_rate != history.front().learning_rate;
  });
  std::string s = lr ? "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n"
                     : "epoch,accuracy,loss,val_accuracy,val_loss\n";
  for (const auto& e : history) {
    s += lr ? fmt::format("{},{},{},{}", e.epoch - 1, e.accuracy, e.learning_rate, e.loss)
            : fmt::format("{},{},{}", e.epoch - 1, e.accuracy, e.loss);
    s += e.has_val ? fmt::format(",{},{}\n", e.val_accuracy, e.val_loss) : ",,\n";
  }
  write_file_atomically(path, s);
}

std::string metrics_json(const ConfusionMatrix& cm, const ClassificationReport& r,
                         const std::vector<std::string>& classes) {
  auto cls = [](const ClassMetrics& m) {
    return fmt::format(R"({{"precision": {}, "recall": {}, "f1": {}, "support": {}}})", m.precision,
                       m.recall, m.f1, m.support);
  };
  std::string s = fmt::format("{{\"accuracy\": {},\n  \"per_class\": {{", r.accuracy);
  for (size_t c = 0; c < r.per_class.size(); ++c)
    s += fmt::format("{}\n    {}: {}", c ? "," : "", json_string(classes.at(c)),
                     cls(r.per_class[c]));
  s += fmt::format("\n  }},\n  \"macro_avg\": {},\n  \"weighted_avg\": {},\n  \"classes\": [",
                   cls(r.macro), cls(r.weighted));
  for (size_t c = 0; c < classes.size(); ++c) s += (c ? ", " : "") + json_string(classes[c]);
  s += "],\n  \"confusion_matrix\": [";
  for (int t = 0; t < cm.classes; ++t) {
    s += t ? ",\n    [" : "\n    [";
    for (int p = 0; p < cm.classes; ++p) s += fmt::format("{}{}", p ? ", " : "", cm.at(t, p));
    s += "]";
  }
  return s + "]\n}";
}

void print_report(std::ostream& out, const ConfusionMatrix& cm, const ClassificationReport& r,
                  const std::vector<std::string>& classes) {
  size_t w = 12;
  for (const auto& c : classes) w = std::max(w, std::min<size_t>(c.size(), 30));
  out << fmt::format("{:>{}}  precision  recall     f1  support\n", "", w);
  for (size_t c = 0; c < r.per_class.size(); ++c) {
    const auto& m = r.per_class[c];
    out << fmt::format("{:>{}}  {:9.4f}  {:6.4f}  {:5.4f}  {:7}\n", classes[c].substr(0, 30), w,
                       m.precision, m.recall, m.f1, m.support);
  }
  out << fmt::format("{:>{}}  {:9.4f}  {:6.4f}  {:5.4f}  {:7}\n", "macro avg", w, r.macro.precision,
                     r.macro.recall, r.macro.f1, r.macro.support);
  out << fmt::format("{:>{}}  {:9.4f}  {:6.4f}  {:5.4f}  {:7}\n", "weighted avg", w,
                     r.weighted.precision, r.weighted.recall, r.weighted.f1, r.weighted.support);
  if (cm.classes > 20) return;
  out << "\nconfusion matrix (rows: true class, columns: predicted, in the order above)\n";
  for (int t = 0; t < cm.classes; ++t) {
    out << fmt::format("{:>{}} ", classes[t].substr(0, 30), w);
    for (int p = 0; p < cm.classes; ++p) out << fmt::format(" {:5}", cm.at(t, p));
    out << "\n";
  }
}

}  // namespace tl
