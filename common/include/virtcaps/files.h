// File-system reads used by collectors. Every error names the path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

// Reads a whole file (sysfs/procfs files report size 0, so this reads until EOF).
// Reads at most max_bytes; a larger file is an error rather than a silent cut.
Expected<std::string> ReadFile(const std::string& path, size_t max_bytes = 16u << 20);
// The first `bytes` bytes of a file (or all of it, if shorter).
Expected<std::string> ReadFileHead(const std::string& path, size_t bytes);
// ReadFile, trimmed of surrounding white space.
Expected<std::string> ReadValue(const std::string& path);
// A trimmed file parsed as an unsigned decimal integer.
Expected<uint64_t> ReadUint(const std::string& path);
// A kernel cpu/node list file ("0-3,8"); errors name the path.
Expected<std::vector<unsigned>> ReadCpuList(const std::string& path);

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Entry names of a directory, sorted, without "." and "..".
Expected<std::vector<std::string>> ListDirectory(const std::string& path);

// Writes a file so readers see either the old or the new content, never a part.
Status WriteFileAtomically(const std::string& path, const std::string& content);

// Joins path pieces with exactly one '/' between them.
std::string JoinPath(const std::string& base, const std::string& rest);

}  // namespace virtcaps
