//! link_faults
