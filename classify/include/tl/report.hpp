// Text outputs of tl-train and tl-predict: Keras CSVLogger history, prediction CSV, metrics
// JSON, and the metrics table printed on the terminal.
//
//   tl::write_history_csv("history.csv", result.history);   // epoch,accuracy,loss,val_...
//   std::string j = tl::metrics_json(cm, tl::classification_report(cm), classes);
//   tl::print_report(std::cerr, cm, tl::classification_report(cm), classes);
#pragma once

#include <filesystem>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tl/metrics.hpp"
#include "tl/trainer.hpp"

namespace tl {

// RFC 4180: quoted when it holds a comma, quote, CR or LF (quotes doubled).
std::string csv_field(std::string_view s);
// A JSON string literal, quotes included (control characters escaped, UTF-8 passed through).
std::string json_string(std::string_view s);

// Keras CSVLogger's format: "epoch,accuracy,loss,val_accuracy,val_loss", epochs from 0, with
// a learning_rate column (in Keras's alphabetical place) when the rate changed during the run
// (the divergence guard halved it); written atomically (tl::write_file_atomically).
void write_history_csv(const std::filesystem::path& path, std::span<const EpochRecord> history);

// The metrics block of --metrics-json: accuracy, per-class precision/recall/F1/support,
// macro and weighted averages, and the confusion matrix ([truth][predicted]).
std::string metrics_json(const ConfusionMatrix& cm, const ClassificationReport& r,
                         const std::vector<std::string>& classes);

// The table printed by tl-predict: per-class precision, recall, F1, support, then the
// confusion matrix when there are at most 20 classes.
void print_report(std::ostream& out, const ConfusionMatrix& cm, const ClassificationReport& r,
                  const std::vector<std::string>& classes);

}  // namespace tl
