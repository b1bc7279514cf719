// A vector whose copies share one buffer until one of them is changed.
#pragma once

#include <atomic>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace virtcaps {

// For the large, rarely changed parts of the model (a guest's CPU models and
// expansions): each refresh copies the guests it keeps from the probe memory into its
// snapshot, and a copy here is one reference count. Reading never copies; any
// non-const access first makes this copy's own buffer (copy on write), so a copy
// never sees another's changes. Not safe to change from two threads at once, as a
// std::vector is not; sharing across threads for reading is.
template <typename T>
class SharedVector {
 public:
  using value_type = T;
  using const_iterator = typename std::vector<T>::const_iterator;
  using iterator = typename std::vector<T>::iterator;

  SharedVector() = default;
  SharedVector(std::initializer_list<T> items) : SharedVector(std::vector<T>(items)) {}
  explicit SharedVector(std::vector<T> items)
      : items_(items.empty() ? nullptr : std::make_shared<std::vector<T>>(std::move(items))) {}

  size_t size() const { return items_ ? items_->size() : 0; }
  bool empty() const { return size() == 0; }
  const_iterator begin() const { return Items().begin(); }
  const_iterator end() const { return Items().end(); }
  const T& operator[](size_t i) const { return Items()[i]; }
  const T& front() const { return Items().front(); }
  const T& back() const { return Items().back(); }

  iterator begin() { return Own().begin(); }
  iterator end() { return Own().end(); }
  T& operator[](size_t i) { return Own()[i]; }
  T& front() { return Own().front(); }
  T& back() { return Own().back(); }
  void push_back(T item) { Own().push_back(std::move(item)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return Own().emplace_back(std::forward<Args>(args)...);
  }
  void clear() { items_.reset(); }

  // True when both are the same buffer: equal without comparing the items.
  bool SharesWith(const SharedVector& other) const { return items_ == other.items_; }
  bool operator==(const SharedVector& other) const {
    return SharesWith(other) || Items() == other.Items();
  }

 private:
  const std::vector<T>& Items() const {
    static const std::vector<T> kEmpty;
    return items_ ? *items_ : kEmpty;
  }
  std::vector<T>& Own() {
    if (!items_) {
      items_ = std::make_shared<std::vector<T>>();
    } else if (items_.use_count() > 1) {
      items_ = std::make_shared<std::vector<T>>(*items_);
    } else {
      // The last other owner's reads happened before it let go; see them as done.
      std::atomic_thread_fence(std::memory_order_acquire);
    }
    return *items_;
  }

  std::shared_ptr<std::vector<T>> items_;
};

}  // namespace virtcaps
