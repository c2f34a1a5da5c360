#include "body_sink.hpp"

#include "image_type.hpp"
#include "naming.hpp"
#include "plan.hpp"

namespace imgdl::detail {

std::error_code append_body(PartFile& part, Sha256* hash, std::string_view data) noexcept {
  if (auto error = part.write(data))
    return error;
  if (hash) {
    try {
      hash->update(data);
    } catch (const std::exception&) {  // OpenSSL could not allocate its context
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  return {};
}

std::error_code write_held_body(AttemptOutcome& outcome, PartFile& part, Sha256* hash) {
  if (outcome.held_body.empty())
    return {};
  if (!part.is_open())
    return std::make_error_code(std::errc::bad_file_descriptor);
  if (auto error = append_body(part, hash, outcome.held_body))
    return error;
  outcome.held_body.clear();
  return {};
}

void settle_name(const OutputRules& rules, Plan& plan) {
  if (plan.name_settled || !plan.past_window || plan.error != ErrorKind::None || plan.duplicate ||
      !rules.run_start || rules.options->on_exists == OnExists::Rename)
    return;
  plan.name_settled = true;
  for (int n = 0; n < 100000; ++n) {
    std::string candidate = n == 0 ? plan.name : next_free_name(plan.name, n);
    if (n > 0 && rules.reserved && rules.reserved(candidate))
      continue;
    if (final_file_age(*rules.dir, candidate, *rules.run_start) != EntryAge::Newer) {
      plan.name = std::move(candidate);
      return;
    }
  }
}

std::optional<Ending> ending_without_fetch(const OutputRules& rules, Plan& plan) {
  if (plan.error != ErrorKind::None)
    return Ending{DownloadStatus::Failed, plan.error, plan.message};
  if (plan.duplicate)
    return Ending{DownloadStatus::Skipped, ErrorKind::None, "duplicate of an earlier URL in this run"};
  settle_name(rules, plan);
  const OnExists on_exists = rules.options->on_exists;
  if ((on_exists == OnExists::Skip || on_exists == OnExists::Resume) &&
      final_file_exists(*rules.dir, plan.name))
    return Ending{DownloadStatus::Skipped, ErrorKind::None, "already exists"};
  return std::nullopt;
}

void settle_result(DownloadResult& result, Ending ending, const Plan& plan, const DownloadOptions& options,
                   std::chrono::steady_clock::time_point start) {
  result.status = ending.status;
  result.error = ending.error;
  result.message = std::move(ending.message);
  result.elapsed = std::chrono::steady_clock::now() - start;
  if (result.path.empty() && !plan.name.empty() && !plan.duplicate)
    result.path = options.output_dir / plan.name;
}

DownloadResult cancelled_before_start(const DownloadOptions& options, const std::string& url,
                                      const std::string& name) {
  DownloadResult r;
  r.url = url;
  if (!name.empty())
    r.path = options.output_dir / name;
  r.status = DownloadStatus::Cancelled;
  r.error = ErrorKind::Cancelled;
  r.message = "cancelled before it started";
  return r;
}

bool final_file_exists(const OutputDir& dir, const std::string& name) {
  if (dir.exists(name))
    return true;
  if (has_extension(name))
    return false;
  for (const ImageType type : image_types_with_extension)
    if (dir.exists(with_extension_for(name, extension_for(type))))
      return true;
  return false;
}

EntryAge final_file_age(const OutputDir& dir, const std::string& name, DiskTime since) {
  EntryAge age = dir.age(name, since);
  if (age == EntryAge::Newer || has_extension(name))
    return age;
  for (const ImageType type : image_types_with_extension) {
    const EntryAge with_ext = dir.age(with_extension_for(name, extension_for(type)), since);
    if (with_ext == EntryAge::Newer)
      return with_ext;
    if (with_ext == EntryAge::Older)
      age = EntryAge::Older;
  }
  return age;
}

BodySink::BodySink(const OutputRules& rules, std::string name, bool past_window)
    : rules_(rules),
      name_(std::move(name)),
      past_window_(past_window),
      // A resumed part file's prefix is hashed as it is opened, and the rest as it streams.
      hash_mode_(!rules.options->compute_sha256                                     ? HashMode::None
                 : rules.hash_after && rules.options->on_exists != OnExists::Resume ? HashMode::After
                                                                                    : HashMode::Streaming),
      resume_(rules.options->on_exists == OnExists::Resume),
      use_range_(resume_) {}

std::optional<AttemptOutcome> BodySink::open() {
  opened_ = true;
  if (auto failure = open_file())
    return failure;
  if (part_.size() > 0 && hashes_while_streaming()) {
    if (auto read_error = part_.read_all([&](std::string_view chunk) { hash_.update(chunk); }))
      return AttemptOutcome{ErrorKind::Write, "cannot read " + part_.name() + ": " + read_error.message()};
  }
  return std::nullopt;
}

/// Only a resumable download needs a part file under a name another run can find (and Overwrite a
/// rename, to replace atomically); any other is written to an unnamed file, linked in when whole.
std::optional<AttemptOutcome> BodySink::open_file() {
  const OutputDir& dir = *rules_.dir;
  std::error_code error;
  if (!resume_ && rules_.options->on_exists != OnExists::Overwrite) {
    part_ = dir.open_unnamed(name_, error);
    if (error)
      return AttemptOutcome{ErrorKind::Write, "cannot create a file for " + name_ + ": " + error.message()};
    if (part_.is_open())
      return std::nullopt;
  }
  const std::string stem = part_file_stem(name_);
  part_ = dir.open_part(stem, resume_, error);
  if (error == std::errc::device_or_resource_busy)
    return AttemptOutcome{ErrorKind::Write,
                          "another transfer is writing " + stem + ".part in this directory"};
  if (error)
    return AttemptOutcome{ErrorKind::Write, "cannot create " + stem + ".part: " + error.message()};
  return std::nullopt;
}

std::optional<AttemptOutcome> BodySink::prepare_retry(bool restart_from_scratch) {
  if (!restart_from_scratch && resume_)
    return std::nullopt;  // the next attempt continues the part file with a Range
  if (auto error = part_.truncate())
    return AttemptOutcome{ErrorKind::Write, "cannot truncate " + part_.name() + ": " + error.message()};
  hash_ = Sha256();
  hashed_ = false;
  use_range_ = resume_ && !restart_from_scratch;
  return std::nullopt;
}

std::optional<AttemptOutcome> BodySink::hash_file(AttemptOutcome& outcome) {
  hash_ = Sha256();
  try {
    if (part_.size() == 0) {
      // A small body, whole in memory: hashed there, with no reading back.
      hash_.update(outcome.held_body);
      if (auto error = write_held_body(outcome, part_, nullptr))
        return AttemptOutcome{ErrorKind::Write, "cannot write " + part_.name() + ": " + error.message()};
    } else {
      if (auto error = write_held_body(outcome, part_, nullptr))
        return AttemptOutcome{ErrorKind::Write, "cannot write " + part_.name() + ": " + error.message()};
      if (auto error = part_.read_all([&](std::string_view chunk) { hash_.update(chunk); }))
        return AttemptOutcome{ErrorKind::Write, "cannot read " + part_.name() + ": " + error.message()};
    }
  } catch (const std::exception& e) {  // OpenSSL could not allocate, or no memory for the buffer
    return AttemptOutcome{ErrorKind::Write, "cannot hash " + part_.name() + ": " + e.what()};
  }
  hashed_ = true;
  return std::nullopt;
}

Ending BodySink::finish(AttemptOutcome outcome, DownloadResult& result) {
  const DownloadOptions& options = *rules_.options;
  if (outcome.error == ErrorKind::None && needs_hash()) {
    if (auto failure = hash_file(outcome))
      outcome = std::move(*failure);
  }
  if (auto error = write_held_body(outcome, part_, hashes_while_streaming() ? &hash_ : nullptr))
    outcome = {ErrorKind::Write, "cannot write " + part_.name() + ": " + error.message()};
  result.bytes = part_.size();
  result.width = outcome.width;  // a filtered image's size is worth reporting too
  result.height = outcome.height;
  result.orientation = outcome.orientation;
  if (outcome.error != ErrorKind::None) {
    // Under Resume, a transfer cut short stays as .part for the next run to continue.
    const bool keep =
        resume_ && part_.size() > 0 && !outcome.restart_from_scratch &&
        (outcome.retryable || outcome.error == ErrorKind::Cancelled || outcome.error == ErrorKind::Timeout);
    if (keep)
      part_.keep();
    part_.discard();
    const auto status =
        outcome.error == ErrorKind::Cancelled ? DownloadStatus::Cancelled : DownloadStatus::Failed;
    return {status, outcome.error, std::move(outcome.message)};
  }

  result.image_type = outcome.image_type;
  std::string final_name = name_;
  if (!has_extension(final_name) && outcome.image_type != ImageType::Unknown)
    final_name = with_extension_for(final_name, extension_for(outcome.image_type));
  if (options.compute_sha256)
    result.sha256 = hash_.hex_digest();
  // Under Rename, a name taken on disk moves on to name.N.ext, but never onto a name planned for a
  // later URL of this run: names must depend on the input order alone.
  static const std::function<bool(const std::string&)> none = [](const std::string&) { return false; };
  std::error_code error;
  const auto published =
      rules_.dir->publish(part_, final_name, options.on_exists, rules_.reserved ? rules_.reserved : none,
                          error, past_window_ ? rules_.run_start : std::nullopt);
  if (error) {
    part_.discard();
    return {DownloadStatus::Failed, ErrorKind::Write,
            "cannot rename to " + final_name + ": " + error.message()};
  }
  result.path = options.output_dir / published;
  return {};
}

}  // namespace imgdl::detail
