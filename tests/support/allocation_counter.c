/* Preloaded into the agent by AgentE2eTest.AScrapeAllocatesNothingOfTheAgents: counts
 * every malloc, calloc and realloc of the process and writes the total to stderr when
 * the process exits ("ALLOCATIONS <n>"). glibc's own entry points do the work. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t count, size_t size);
extern void* __libc_realloc(void* pointer, size_t size);

static atomic_long allocations;

void* malloc(size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_malloc(size);
}

void* calloc(size_t count, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_calloc(count, size);
}

void* realloc(void* pointer, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_realloc(pointer, size);
}

__attribute__((destructor)) static void Report(void) {
  char line[64];
  int length = snprintf(line, sizeof(line), "ALLOCATIONS %ld\n", atomic_load(&allocations));
  if (length > 0) (void)!write(2, line, (size_t)length);
}
