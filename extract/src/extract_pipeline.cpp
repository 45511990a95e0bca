// The extraction pipeline: list -> decode (parallel) -> forward -> commit (serial, in order).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>

#include <fmt/format.h>
#include <tbb/concurrent_queue.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include "extract_output.hpp"
#include "tl/error.hpp"
#include "tl/extract.hpp"
#include "tl/feature_file.hpp"
#include "tl/machine.hpp"
#include "tl/output_file.hpp"
#include "tl/output_lock.hpp"
#include "tl/progress.hpp"
#include "tl/weights.hpp"

namespace fs = std::filesystem;

namespace tl {

Schedule parse_schedule(std::string_view s) {
  if (s == "shared-net") return Schedule::shared_net;
  if (s == "net-per-thread") return Schedule::net_per_thread;
  throw UsageError(fmt::format("unknown schedule '{}' (accepted: shared-net, net-per-thread)", s));
}

std::string_view to_string(Schedule s) {
  return s == Schedule::shared_net ? "shared-net" : "net-per-thread";
}

namespace {

// One batch in flight. A fixed set of slots is allocated up front and recycled, so memory
// does not grow with the number of images. With --augment K each image gives a group of
// 1 + K rows (the original, then copies 1..K), kept together in one slot.
struct Slot {
  std::size_t first = 0, count = 0;  // list entries [first, first + count)
  std::size_t decoded = 0;           // entries decoded (their groups compacted to the front)
  std::size_t rows = 0;              // rows: decoded * (1 + K)
  std::vector<float> images;         // [slot rows][h][w][3]
  std::vector<float> out;            // [slot rows][oh][ow][oc]
  std::vector<float> pooled;         // [slot rows][oc] when pooling
  std::vector<std::string> errors;   // per entry, "" when decoded
  std::vector<std::int32_t> labels, augment_index;
  std::vector<std::string> paths, failed_paths, failed_reasons;
  std::string strict_failure;  // --strict: the first image that could not be used
  const Vgg16* net = nullptr;  // the net that computed `out`
};

void validate(const ExtractConfig& c) {
  if (c.images.empty() && c.list.empty()) throw UsageError("--images: required");
  if (c.output.empty()) throw UsageError("--output: required");
  // A device, pipe, folder or dangling symlink is never an output (issue 15, items 7, 21);
  // an existing file of another kind is refused when it is opened (--overwrite replaces it).
  check_outputs({}, {{"--output", c.output, FileKind::features}}, /*overwrite=*/true);
  if (c.net.batch < 1)
    throw UsageError(fmt::format("--batch: {} (must be at least 1)", c.net.batch));
  if (c.threads < 0) throw UsageError(fmt::format("--threads: {} (must be >= 0)", c.threads));
  if (c.calibrate < 1)
    throw UsageError(fmt::format("--calibrate: {} (must be at least 1)", c.calibrate));
  c.augment.validate();
  // A precision or algorithm this CPU has no kernel for is refused here, before any file.
  machine().require_net(c.net.precision, c.net.algo);
}

class Extraction {
 public:
  Extraction(const ExtractConfig& cfg, std::ostream& log, const std::atomic<bool>* stop)
      : cfg_(cfg), log_(log), stop_(stop) {}

  ExtractSummary run() {
    validate(cfg_);
    threads_ = cfg_.threads > 0 ? cfg_.threads : tbb::this_task_arena::max_concurrency();
    if (const int cpus = machine().cpus; threads_ > cpus) {
      log_ << fmt::format(
          "note: --threads {} is more than the {} CPUs this process may run on ({}): using {}\n",
          threads_, cpus, machine().cpus_source, cpus);
      threads_ = cpus;
    }
    check_memory();
    list_ = cfg_.list.empty() ? list_images(cfg_.images) : read_image_list(cfg_.list, cfg_.images);
    for (const auto& n : list_.notes) log_ << "note: " << n << "\n";
    std::tie(begin_, end_) = shard_range(list_.entries.size(), cfg_.shard);
    if (begin_ == end_)
      log_ << "note: shard " << cfg_.shard.index << "/" << cfg_.shard.count << " is empty ("
           << list_.entries.size() << " images in all)\n";

    const Vgg16Weights weights = load_weights(cfg_.weights);
    if (!weights.pretrained)
      log_ << "warning: weights " << weights.describe()
           << ": these features are for tests and demos only\n";
    const FeatureMeta meta =
        output_meta(cfg_, weights, list_, static_cast<std::int64_t>(end_ - begin_));
    weights_ = &weights;

    // Locked by the final name resolved (symlinks followed), so the lock also covers
    // OUT.partial; the file itself is locked too once open (a hard link meets that).
    OutputLock lock(cfg_.output);
    ExtractSummary sum;
    output_.emplace(cfg_, log_,
                    [&] { return int8_ranges_for_new_file(cfg_, weights, list_, log_); });
    std::optional<FeatureWriter> writer = output_->open(meta, sum);
    lock.hold(output_->file());
    sum.file = output_->file();
    if (!writer) return sum;
    sum.resumed_from = writer->meta().entries_done;
    if (sum.resumed_from > 0)
      log_ << fmt::format("resuming '{}': {} of {} images done ({} rows)\n",
                          output_->file().string(), sum.resumed_from, end_ - begin_,
                          writer->meta().rows_done);

    omp_set_num_threads(cfg_.schedule == Schedule::shared_net ? threads_ : 1);
    net_cfg_ = cfg_.net;
    net_cfg_.calibration = writer->meta().calibration;  // int8: the file's own ranges
    if (cfg_.schedule == Schedule::shared_net)
      shared_net_ = std::make_unique<Vgg16>(weights, net_cfg_);
    log_ << fmt::format(
        "tl-extract: {} images{} -> '{}' ({} {}x{} {}, batch {}, {} threads, {})\n", end_ - begin_,
        cfg_.shard.count > 1 ? fmt::format(" (shard {}/{})", cfg_.shard.index, cfg_.shard.count)
                             : "",
        output_->file().string(), cfg_.net.to, cfg_.net.height, cfg_.net.width,
        cfg_.net.precision == Precision::f32 ? fmt::format("f32 {}", to_string(cfg_.net.algo))
                                             : std::string(to_string(cfg_.net.precision)),
        cfg_.net.batch, threads_, to_string(cfg_.schedule));
    if (cfg_.augment.enabled()) log_ << "augmentation: " << cfg_.augment.describe() << "\n";

    Progress progress(log_, static_cast<std::int64_t>(end_ - begin_), sum.resumed_from, cfg_.quiet);
    pipeline(*writer, progress, sum);
    progress.finish();

    const auto& m = writer->meta();
    sum.rows = m.rows_done;
    sum.failed = m.failed_count;
    sum.seconds = progress.seconds();
    if (!sum.stopped && m.entries_done == static_cast<std::int64_t>(end_ - begin_)) {
      writer->finish();
      if (output_->file() != cfg_.output) output_->publish();
      sum.file = output_->file();
      sum.complete = true;
    }
    return sum;
  }

 private:
  std::size_t slot_count() const {
    return cfg_.schedule == Schedule::net_per_thread ? threads_ + 1 : 3;
  }

  // Rows of one image: the original and its K copies.
  std::size_t group() const { return 1 + static_cast<std::size_t>(cfg_.augment.copies); }
  // Images per slot: as many whole groups as fill a batch, at least one.
  std::size_t slot_entries(int batch) const {
    return std::max<std::size_t>(1, static_cast<std::size_t>(batch) / group());
  }
  std::size_t slot_rows(int batch) const { return slot_entries(batch) * group(); }

  // Bytes of the batch slots and nets for a batch size, from shapes alone: what pipeline()
  // and the nets will allocate (a lower bound: oneDNN's scratchpad comes on top).
  double memory_needed(int batch) const {
    NetConfig net = cfg_.net;
    net.batch = batch;
    const Shape in{static_cast<int>(slot_rows(batch)), net.height, net.width, 3};
    const Shape out = infer_shapes(in, kInputLayer, net.to).back();
    const double slot =
        4.0 * (in.elems_double() + out.elems_double() +
               (cfg_.pool != Pool::none ? static_cast<double>(out.n) * out.c : 0.0));
    const double nets = cfg_.schedule == Schedule::net_per_thread ? threads_ : 1;
    return static_cast<double>(slot_count()) * slot +
           nets * static_cast<double>(Vgg16::estimate_bytes(net));
  }

  // Refuses a --batch whose buffers cannot fit in the memory available, before anything is
  // allocated (instead of the OOM killer mid-run), suggesting the largest batch that fits.
  void check_memory() const {
    const double avail = static_cast<double>(available_memory());
    if (avail <= 0) return;  // unknown: no check
    const double need = memory_needed(cfg_.net.batch);
    if (need <= avail) return;
    constexpr double gib = 1024.0 * 1024 * 1024;
    const double one = memory_needed(1), per_image = memory_needed(2) - one;
    const double fit = per_image > 0 ? std::floor((avail - (one - per_image)) / per_image) : 0;
    throw UsageError(fmt::format(
        "--batch {}: needs at least {:.1f} GiB ({} batches of {}x{} images in flight and {} "
        "net{} to {}), but {:.1f} GiB of memory is available; {}",
        cfg_.net.batch, need / gib, slot_count(), cfg_.net.height, cfg_.net.width,
        cfg_.schedule == Schedule::net_per_thread ? threads_ : 1,
        cfg_.schedule == Schedule::net_per_thread && threads_ > 1 ? "s" : "", cfg_.net.to,
        avail / gib,
        fit >= 1
            ? fmt::format("try --batch {} or less (the most that could fit)",
                          static_cast<long long>(std::min<double>(fit, cfg_.net.batch - 1)))
            : fmt::format("even --batch 1 needs {:.1f} GiB (try a smaller --size)", one / gib)));
  }

  bool stopping() const { return halted_ || (stop_ && stop_->load()); }

  // Decodes the slot's entries in parallel (with --augment K: each entry's original and its
  // K copies, rows i*(1+K) .. i*(1+K)+K) and compacts the decoded groups to the front.
  void decode(Slot& s) const {
    const std::size_t row = static_cast<std::size_t>(cfg_.net.height) * cfg_.net.width * 3;
    const std::size_t g = group();
    ImageOptions opt = cfg_.image;
    opt.height = cfg_.net.height;
    opt.width = cfg_.net.width;
    tbb::parallel_for(std::size_t{0}, s.count, [&](std::size_t i) {
      s.errors[i].clear();
      const auto& e = list_.entries[s.first + i];
      if (!e.error.empty()) {  // found while listing (a folder that cannot be listed)
        s.errors[i] = e.error;
        return;
      }
      try {
        if (g == 1) {
          load_image(list_.full_path(e), opt, &s.images[i * row]);
          return;
        }
        std::vector<cv::Mat> rgb;  // the original and its copies, network size, RGB u8
        load_augmented(list_.full_path(e), e.path, opt, cfg_.augment, cfg_.augment.copies, rgb);
        for (std::size_t c = 0; c < g; ++c)
          preprocess_image(rgb[c], opt.preprocess, &s.images[(i * g + c) * row]);
      } catch (const std::exception& ex) {
        s.errors[i] = ex.what();
      }
    });
    s.decoded = 0;
    s.rows = 0;
    s.strict_failure.clear();
    s.labels.clear();
    s.augment_index.clear();
    s.paths.clear();
    s.failed_paths.clear();
    s.failed_reasons.clear();
    for (std::size_t i = 0; i < s.count; ++i) {
      const auto& e = list_.entries[s.first + i];
      if (!s.errors[i].empty()) {
        if (cfg_.strict) {  // stop before it: neither it nor what follows is consumed
          s.strict_failure = fmt::format("'{}': {}", e.path, s.errors[i]);
          break;
        }
        s.failed_paths.push_back(e.path);
        s.failed_reasons.push_back(s.errors[i]);
        continue;
      }
      if (s.decoded != i)
        std::memmove(&s.images[s.decoded * g * row], &s.images[i * g * row],
                     g * row * sizeof(float));
      for (std::size_t c = 0; c < g; ++c) {  // the group's rows share label and path
        s.labels.push_back(e.label);
        s.paths.push_back(e.path);
        s.augment_index.push_back(static_cast<std::int32_t>(c));
      }
      ++s.decoded;
      s.rows += g;
    }
  }

  void forward(Slot& s) {
    if (s.rows == 0) return;
    std::unique_ptr<Vgg16>& net = shared_net_ ? shared_net_ : nets_.local();
    // OpenMP's thread count belongs to the calling thread: set it on this TBB worker.
    omp_set_num_threads(shared_net_ ? threads_ : 1);
    if (!net)  // net-per-thread: this worker's own net, built under the 1-thread setting
      net = std::make_unique<Vgg16>(*weights_, net_cfg_);
    // A slot holds whole groups, which can exceed the net's batch: forward it batch by batch.
    const std::size_t in_row = static_cast<std::size_t>(cfg_.net.height) * cfg_.net.width * 3;
    const auto out_row = static_cast<std::size_t>(net->output_shape().per_image());
    const std::size_t batch = static_cast<std::size_t>(cfg_.net.batch);
    s.net = net.get();
    for (std::size_t r = 0; r < s.rows; r += batch)
      net->forward(&s.images[r * in_row], static_cast<int>(std::min(batch, s.rows - r)),
                   &s.out[r * out_row]);
    if (cfg_.pool != Pool::none) {  // {rows, oh, ow, oc} -> {rows, oc}
      const Shape o = net->output_shape();
      for (std::size_t r = 0; r < s.rows; ++r)
        global_pool(cfg_.pool, &s.out[r * out_row], o.h, o.w, o.c, &s.pooled[r * o.c]);
    }
  }

  void commit(Slot& s, FeatureWriter& w, Progress& progress, ExtractSummary& sum) {
    const std::size_t entries = s.decoded + s.failed_paths.size();  // < count at a strict stop
    if (s.net && !machine_recorded_) {  // the machine, before its first rows are committed
      machine_recorded_ = true;
      const std::string algo(to_string(s.net->algo_used()));
      if (w.record_machine(machine().isa, algo, s.net->describe()))
        progress.note(fmt::format(
            "'{}' now holds rows computed on oneDNN ISAs {} with algorithms {}: such rows may "
            "differ in the last bits (within f32's bound; docs/FORMAT.md)",
            output_->file().string(), w.meta().cpu_isa, w.meta().algo));
    }
    for (std::size_t i = 0; i < s.failed_paths.size(); ++i)
      progress.note(fmt::format("skipped '{}': {}", s.failed_paths[i], s.failed_reasons[i]));
    w.commit({.features = cfg_.pool == Pool::none ? s.out.data() : s.pooled.data(),
              .rows = s.rows,
              .labels = s.labels,
              .paths = s.paths,
              .failed_paths = s.failed_paths,
              .failed_reasons = s.failed_reasons,
              .entries = static_cast<std::int64_t>(entries),
              .augment_index = s.augment_index});
    sum.rows_this_run += static_cast<std::int64_t>(s.rows);
    sum.images_this_run += static_cast<std::int64_t>(s.decoded);
    sum.failed_this_run += static_cast<std::int64_t>(s.failed_paths.size());
    if (!s.strict_failure.empty()) {
      halted_ = true;
      sum.stopped = true;
      sum.strict_failure = s.strict_failure;
      progress.note(
          fmt::format("--strict: stopped at {} (the rows before it are committed). Fix the "
                      "image in place and run the same command to resume; or run the same "
                      "command without --strict to resume and skip it. Removing or renaming it "
                      "changes the image list: that run must start again (--overwrite)",
                      s.strict_failure));
    }
    progress.update(w.meta().entries_done, w.meta().failed_count);
  }

  void pipeline(FeatureWriter& w, Progress& progress, ExtractSummary& sum) {
    const bool per_thread = cfg_.schedule == Schedule::net_per_thread;
    const std::size_t tokens = slot_count();
    const std::size_t entries = slot_entries(cfg_.net.batch);
    const Shape in{static_cast<int>(slot_rows(cfg_.net.batch)), cfg_.net.height, cfg_.net.width, 3};
    const Shape out = infer_shapes(in, kInputLayer, cfg_.net.to).back();
    std::vector<std::unique_ptr<Slot>> slots;
    tbb::concurrent_bounded_queue<Slot*> free;
    for (std::size_t i = 0; i < tokens; ++i) {
      auto s = std::make_unique<Slot>();
      s->images.resize(in.elems());
      s->out.resize(out.elems());
      if (cfg_.pool != Pool::none) s->pooled.resize(static_cast<std::size_t>(out.n) * out.c);
      s->errors.resize(entries);
      free.push(s.get());
      slots.push_back(std::move(s));
    }
    std::size_t next = begin_ + static_cast<std::size_t>(w.meta().entries_done);
    tbb::task_arena arena(threads_);
    arena.execute([&] {
      tbb::parallel_pipeline(
          tokens,
          tbb::make_filter<void, Slot*>(tbb::filter_mode::serial_in_order,
                                        [&](tbb::flow_control& fc) -> Slot* {
                                          if (next >= end_ || stopping()) {
                                            fc.stop();
                                            return nullptr;
                                          }
                                          Slot* s = nullptr;
                                          free.pop(s);
                                          s->first = next;
                                          s->count = std::min(entries, end_ - next);
                                          next += s->count;
                                          return s;
                                        }) &
              tbb::make_filter<Slot*, Slot*>(tbb::filter_mode::parallel,
                                             [&](Slot* s) {
                                               if (!stopping()) {
                                                 decode(*s);
                                                 if (per_thread) forward(*s);
                                               }
                                               return s;
                                             }) &
              tbb::make_filter<Slot*, void>(tbb::filter_mode::serial_in_order, [&](Slot* s) {
                if (!stopping()) {
                  if (!per_thread) forward(*s);
                  commit(*s, w, progress, sum);
                }
                free.push(s);
              }));
    });
    if (stop_ && stop_->load()) sum.stopped = true;
  }

  const ExtractConfig& cfg_;
  std::ostream& log_;
  const std::atomic<bool>* stop_;
  ImageList list_;
  std::size_t begin_ = 0, end_ = 0;
  std::optional<ExtractOutput> output_;
  int threads_ = 1;
  NetConfig net_cfg_;  // cfg_.net plus the int8 calibration in force
  const Vgg16Weights* weights_ = nullptr;
  std::unique_ptr<Vgg16> shared_net_;                             // shared-net
  tbb::enumerable_thread_specific<std::unique_ptr<Vgg16>> nets_;  // net-per-thread
  std::atomic<bool> halted_{false};  // set by the serial sink, read by the decoders
  bool machine_recorded_ = false;    // the sink has recorded this machine in the file
};

}  // namespace

ExtractSummary run_extract(const ExtractConfig& cfg, std::ostream& log,
                           const std::atomic<bool>* stop) {
  return Extraction(cfg, log, stop).run();
}

}  // namespace tl
