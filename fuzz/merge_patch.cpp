// libFuzzer target: the merge-patch engine. The input is a JSON array [document, patch...].
// Oracles besides the sanitizers, each a property RFC 7386 or the delta engine promises:
//   - applying a patch twice changes nothing the second time (merge patches are idempotent);
//   - merge_patch_diff(before, after) applied to `before` gives `after`;
//   - the one delta DeltaBuilder coalesces from all patches, applied to the document as it
//     was, gives the document as it is.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <boost/json/parse.hpp>
#include "state/delta_builder.hpp"
#include "state/merge_patch.hpp"

namespace state = kasagi::state;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// Documents never hold null as a map member (null in a patch means "delete").
bool is_document(const state::Value& v) {
  if (const auto* obj = v.if_object()) {
    for (const auto& member : *obj) {
      if (member.value().is_null() || !is_document(member.value())) return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code ec;
  auto input = boost::json::parse(
      std::string_view(reinterpret_cast<const char*>(data), size), ec, {}, options);
  auto* items = input.if_array();
  if (ec || !items || items->size() < 2) return 0;
  for (auto& item : *items) {
    if (!state::normalize(item).empty()) return 0;
  }
  state::Value& document = (*items)[0];
  if (!document.is_object() || !is_document(document)) return 0;

  const state::Object before = document.get_object();
  state::Object doc = before;
  state::DeltaBuilder builder;
  for (std::size_t i = 1; i < items->size(); ++i) {
    const state::Value& patch = (*items)[i];
    if (!patch.is_object()) continue;  // only a map may patch a whole document

    const state::Value prior(doc);
    state::Value once = prior;
    state::apply_merge_patch(once, patch);
    state::Value twice = once;
    check(!state::apply_merge_patch(twice, patch) && twice == once);

    state::Value rebuilt = prior;
    state::apply_merge_patch(rebuilt, state::merge_patch_diff(prior, once));
    check(rebuilt == once);

    const bool changed = builder.apply(doc, {}, patch);
    check(state::Value(doc) == once && changed == (once != prior));
  }
  const state::Object delta = builder.take(doc);
  state::Value replayed = state::Value(before);
  state::apply_merge_patch(replayed, state::Value(delta));
  check(replayed == state::Value(doc));
  return 0;
}
