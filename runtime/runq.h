/* SPDX-License-Identifier: BSD-2-Clause */
/* Run queues: the per-P lock-free ring with runnext, and the global queue. */
#ifndef RINGO_RUNQ_H
#define RINGO_RUNQ_H

#include "runtime.h"

/* Owner only: runnext first (inherit = true, the G shares the time slice), then the ring. */
struct rg_g *rg_runqget(struct rg_p *p, bool *inherit);

/* Steal half of victim's ring into p's; returns one G to run now, or NULL. */
struct rg_g *rg_runqsteal(struct rg_p *p, struct rg_p *victim, bool steal_runnext);

/* Goroutines in p's ring (runnext excluded), for stats and traces. */
uint32_t rg_runqlen(struct rg_p *p);

void rg_runqdrain(struct rg_p *p, struct rg_sched *s);

/* Global queue; the _locked forms need s->lock. */
void rg_globrunqput_locked(struct rg_sched *s, struct rg_g *g);
struct rg_g *rg_globrunqget_locked(struct rg_sched *s, struct rg_p *p, int max);

#endif /* RINGO_RUNQ_H */
