/* kiln/kiln.h: the umbrella header of the kiln deep-learning engine. */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include "graph.h"
#include "session.h"
#include "status.h"
#include "tensor.h"
#include "train.h"

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* "0.1.0" */
const char *kiln_version(void);

#ifdef __cplusplus
}
#endif
#endif
