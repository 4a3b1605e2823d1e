/*
** queue.h: the runtime's one intrusive list, in the shape of libuv's
** src/queue.h: a circular doubly linked list with a head node.  An element
** embeds a corio__queue and is found back with corio__queue_data
** (container_of).  Insert and remove are O(1), need no allocation, and
** have no special case for the first or the last element.
**
** Not every list of the runtime is one of these; where a specialised
** structure is cheaper, its comment says why (a task's waiters, the timer
** heap).
*/
#ifndef CORIO_QUEUE_H
#define CORIO_QUEUE_H

#include <stddef.h>

typedef struct corio__queue corio__queue;
struct corio__queue {
  corio__queue *next, *prev;
};

#define corio__queue_data(ptr, type, field)                                    \
  ((type *)((char *)(ptr)-offsetof(type, field)))

/* for (q = first; q != h; q = q->next); `q` must not be removed meanwhile
   (take the next one first when it may be) */
#define corio__queue_foreach(q, h)                                             \
  for ((q) = (h)->next; (q) != (h); (q) = (q)->next)

static inline void corio__queue_init(corio__queue *q) {
  q->next = q->prev = q;
}

static inline int corio__queue_empty(const corio__queue *h) {
  return h->next == h;
}

static inline corio__queue *corio__queue_head(const corio__queue *h) {
  return h->next;
}

static inline void corio__queue_insert_head(corio__queue *h, corio__queue *q) {
  q->next = h->next;
  q->prev = h;
  q->next->prev = q;
  h->next = q;
}

static inline void corio__queue_insert_tail(corio__queue *h, corio__queue *q) {
  q->next = h;
  q->prev = h->prev;
  q->prev->next = q;
  h->prev = q;
}

/* Unlink q; it is left pointing at itself, so removing it twice is safe. */
static inline void corio__queue_remove(corio__queue *q) {
  q->prev->next = q->next;
  q->next->prev = q->prev;
  q->next = q->prev = q;
}

/* Append every element of n, in order, to h; n is left empty. */
static inline void corio__queue_add(corio__queue *h, corio__queue *n) {
  if (corio__queue_empty(n)) return;
  h->prev->next = n->next;
  n->next->prev = h->prev;
  h->prev = n->prev;
  h->prev->next = h;
  corio__queue_init(n);
}

/* Move every element of h, in order, to the head node n (its old
   contents are dropped: n need not be initialised); h is left empty. */
static inline void corio__queue_move(corio__queue *h, corio__queue *n) {
  if (corio__queue_empty(h)) {
    corio__queue_init(n);
    return;
  }
  n->next = h->next;
  n->prev = h->prev;
  n->next->prev = n;
  n->prev->next = n;
  corio__queue_init(h);
}

#endif
