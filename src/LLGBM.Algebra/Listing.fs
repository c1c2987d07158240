/// Formatting lists in messages.
module internal LLGBM.Algebra.Listing

/// The items joined by ", ".
let joined (items: seq<'T>) : string = System.String.Join(", ", items)
