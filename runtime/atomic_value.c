// SPDX-License-Identifier: BSD-2-Clause
/* rg_atomic_value: a pointer published with release and read with acquire. */
#include "ringo.h"

void *rg_atomic_value_load(rg_atomic_value *av)
{
	return __atomic_load_n(&av->v, __ATOMIC_ACQUIRE);
}

void rg_atomic_value_store(rg_atomic_value *av, void *v)
{
	__atomic_store_n(&av->v, v, __ATOMIC_RELEASE);
}

void *rg_atomic_value_swap(rg_atomic_value *av, void *v)
{
	return __atomic_exchange_n(&av->v, v, __ATOMIC_ACQ_REL);
}

bool rg_atomic_value_cas(rg_atomic_value *av, void *old, void *new_v)
{
	return __atomic_compare_exchange_n(&av->v, &old, new_v, false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}
