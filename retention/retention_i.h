/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private to retention/: helpers its files share. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "store.h"

/* Store the JSON object o (taken: decref'd in every case; NULL means
 * -ENOMEM) as the object name, the one stored form of retention's objects
 * (indent 1, keys in order). exclusive: fail with -EEXIST if it exists. */
int ret_put_json(struct store *s, const char *name, json_t *o, bool exclusive);
