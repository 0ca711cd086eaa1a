#include "state/delta_builder.hpp"

#include "state/merge_patch.hpp"

// Invariant of the node tree: captured nodes never nest (a capture folds the captures below
// it), and every map above a captured node existed at the start of the batch and has not
// been overwritten since (overwriting it would have captured it). So the start-of-batch
// value of any location is its current value with the old values below it put back.
// Nodes kept from an earlier batch for reuse (see recycle) are uncaptured and remember
// nothing, so they change none of this.
//
// The helpers are templates over the node type only because DeltaBuilder::Node is private.

namespace kasagi::state {
namespace {

// Returns `node` if it may still capture, or nullptr when it (and so everything below it)
// already remembers its old value.
template <class Node>
Node* live(Node* node) {
  return node && !node->captured ? node : nullptr;
}

// Drops `child` from `parent` when it remembers nothing, so that the tree only holds
// what take() needs.
// Returns `parent`'s child for `key`, creating it if needed.
template <class Node>
auto child_of(Node& parent, std::string_view key) {
  auto it = parent.children.find(key);
  return it != parent.children.end() ? it : parent.children.try_emplace(std::string(key)).first;
}

template <class Node, class Iter>
void prune(Node& parent, Iter child) {
  if (!child->second.captured && child->second.children.empty()) parent.children.erase(child);
}

// Puts back into `v` (a copy of a location's current value) the old values remembered
// below `node`, turning it into the location's value at the start of the batch. Moves the
// old values out of `node`, whose children the caller then discards.
template <class Node>
void restore(Value& v, Node& node) {
  if (!v.is_object()) return;  // so nothing below was captured (invariant)
  Object& obj = v.get_object();
  for (auto& [key, child] : node.children) {
    if (!child.captured) {
      if (Value* sub = obj.if_contains(key)) restore(*sub, child);
    } else if (child.old) {
      obj.insert_or_assign(key, std::move(*child.old));
    } else {
      obj.erase(key);
    }
  }
}

// Remembers the value of `node`'s location (`cur`, nullptr when the key is absent) before
// it is overwritten, unless it was already remembered in this batch.
template <class Node>
void capture(Node& node, const Value* cur) {
  if (node.captured) return;
  if (cur) {
    node.old.emplace(*cur);
    restore(*node.old, node);
  }
  node.children.clear();
  node.captured = true;
}

// Returns the member `key` of `obj`, or nullptr. A boost::json object this small is
// searched linearly, key by key; `node` (tracking that member, or nullptr) remembers where
// the key was last found, and that position is tried first.
template <class Obj, class Node>
auto* member(Obj& obj, std::string_view key, const Node* node) {
  if (!node) return obj.if_contains(key);
  if (node->at < obj.size() && (obj.begin() + node->at)->key() == key)
    return &(obj.begin() + node->at)->value();
  auto it = obj.find(key);
  if (it == obj.end()) return static_cast<decltype(&it->value())>(nullptr);
  node->at = static_cast<std::uint32_t>(it - obj.begin());
  return &it->value();
}

template <class Node>
bool merge_into(Object& target, Node* node, const Object& patch);

// Applies the merge patch `patch` to the member `key` of `parent`, capturing what it
// overwrites. `node` tracks that member, or is nullptr when an ancestor already captured.
// Returns true if the member changed.
template <class Node>
bool apply_member(Object& parent, std::string_view key, Node* node, const Value& patch) {
  Value* cur = member(parent, key, node);
  if (patch.is_object() && cur && cur->is_object())
    return merge_into(cur->get_object(), live(node), patch.get_object());
  // From here on the member is deleted or replaced whole, or is left as it is.
  if (patch.is_null() ? !cur : (cur && *cur == patch)) return false;
  if (node) capture(*node, cur);
  if (patch.is_null()) {
    parent.erase(key);
  } else if (patch.is_object()) {
    Value fresh(boost::json::object_kind, parent.storage());
    apply_merge_patch(fresh, patch);  // drops the patch's nulls
    if (cur) *cur = std::move(fresh);
    else parent.emplace(key, std::move(fresh));
  } else if (cur) {
    *cur = patch;
  } else {
    parent.emplace(key, patch);
  }
  return true;
}

// Applies the map patch `patch` to the map `target`, tracked by `node` (nullptr when
// captured above). Returns true if `target` changed.
template <class Node>
bool merge_into(Object& target, Node* node, const Object& patch) {
  bool changed = false;
  for (const auto& [key, value] : patch) {
    if (!node) {
      changed |= apply_member<Node>(target, key, nullptr, value);
      continue;
    }
    auto child = child_of(*node, key);
    changed |= apply_member(target, key, &child->second, value);
    prune(*node, child);
  }
  return changed;
}

// Returns `patch` nested under `path`: {p0: {p1: ... patch}}.
Value wrap(std::span<const std::string> path, const Value& patch) {
  Value v = patch;
  for (auto it = path.rbegin(); it != path.rend(); ++it) {
    Value outer(boost::json::object_kind);
    outer.get_object().emplace(*it, std::move(v));
    v = std::move(outer);
  }
  return v;
}

// Applies `patch` at `path` below the map `target`, tracked by `node` (nullptr when
// captured above). Returns true if `target` changed.
template <class Node>
bool apply_path(Object& target, Node* node, std::span<const std::string> path,
                const Value& patch) {
  if (path.empty()) return patch.is_object() && merge_into(target, node, patch.get_object());
  const std::string& key = path.front();
  auto rest = path.subspan(1);
  Node* child = nullptr;
  decltype(node->children.begin()) child_it;
  if (node) {
    child_it = child_of(*node, key);
    child = &child_it->second;
  }
  bool changed;
  Value* cur = member(target, key, child);
  if (rest.empty())
    changed = apply_member(target, key, child, patch);
  else if (cur && cur->is_object())
    changed = apply_path(cur->get_object(), live(child), rest, patch);
  else if (patch.is_null())
    changed = false;  // deleting below a missing map deletes nothing
  else  // the missing map or the scalar in the way becomes a map
    changed = apply_member(target, key, child, wrap(rest, patch));
  if (node) prune(*node, child_it);
  return changed;
}

// Adds to `out` the merge patch from the old values remembered below `node` to `now`, the
// current value of `node`'s location.
template <class Node>
void diff_children(const Object& now, const Node& node, Object& out) {
  // Room for every child at the first member added (a map grows by half: ten players'
  // entries would otherwise take seven allocations), none for a map that stays empty.
  auto put = [&](std::string_view key, auto&& value) {
    if (out.empty()) out.reserve(node.children.size());
    out.insert_or_assign(key, std::forward<decltype(value)>(value));
  };
  for (const auto& [key, child] : node.children) {
    const Value* cur = member(now, key, &child);
    if (!child.captured) {
      if (!cur || !cur->is_object()) continue;  // a node kept from an earlier batch
      Object sub;
      diff_children(cur->get_object(), child, sub);
      if (!sub.empty()) put(key, std::move(sub));
    } else if (!child.old) {
      if (cur) put(key, *cur);
    } else if (!cur) {
      put(key, nullptr);
    } else if (child.old->is_object() && cur->is_object()) {
      Value sub = merge_patch_diff(*child.old, *cur);
      if (!sub.get_object().empty()) put(key, std::move(sub));
    } else if (*child.old != *cur) {
      put(key, *cur);
    }
  }
}

// Starts a new batch in the tree of the one just taken: every node used in it is kept,
// emptied, for the next batch (players rewrite the same fields tick after tick, so the
// steady state allocates no node); a node the batch did not use (kept from an earlier
// batch, uncaptured and childless) is dropped, so the tree never outgrows two batches.
template <class Node>
void recycle(Node& node) {
  for (auto it = node.children.begin(); it != node.children.end();) {
    Node& child = it->second;
    if (child.captured) {
      child.captured = false;
      child.old.reset();
    } else {
      recycle(child);
      if (child.children.empty()) {
        it = node.children.erase(it);
        continue;
      }
    }
    ++it;
  }
}

}  // namespace

// A non-map patch at the root path is refused (returns false): the root stays a map.
bool DeltaBuilder::apply(Object& doc, std::span<const std::string> path, const Value& patch) {
  bool changed = apply_path(doc, &root_, path, patch);
  dirty_ |= changed;
  return changed;
}

bool DeltaBuilder::empty() const { return !dirty_; }

Object DeltaBuilder::take(const Object& doc) {
  Object delta;
  if (dirty_) diff_children(doc, root_, delta);
  recycle(root_);
  dirty_ = false;
  return delta;
}

}  // namespace kasagi::state
