"""The slab allocator (SLUB, Linux 6.18) and kmalloc, on top of the simulated page allocator.

- :mod:`kmmlib.slab.calculate` — ``calculate_order()``, ``calculate_sizes()``: slab shapes;
- :mod:`kmmlib.slab.kmalloc` — kmalloc's size classes and cache families;
- :mod:`kmmlib.slab.flags` — ``SLAB_*`` flags and ``slab_debug=`` letters;
- :mod:`kmmlib.slab.slub` — the caches: ``kmem_cache_create/alloc/free/shrink/destroy``,
  ``kmalloc``/``kfree``, slabs taken from and given back to the buddy allocator;
- :mod:`kmmlib.slab.debug` — SLUB debugging: red zones, poison, and the kernel's reports.
"""
