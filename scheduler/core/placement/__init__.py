"""Placement: the fleet as arrays (``fleet``), the packing interface (``packing``), the gang
placer (``placer``) with its all-or-nothing reservation (``reservation``) and what-if room
counter (``gang_room``), and FGD's fragmentation measure (``fragmentation``)."""
