#include "virtcaps/status.h"
