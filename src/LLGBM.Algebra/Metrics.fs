/// Distances and similarities between behavioural embeddings (delta activations and the like).
module LLGBM.Algebra.Metrics

/// Cosine similarity of two vectors of equal length; 0 when either vector is zero.
let cosine (a: float32[]) (b: float32[]) : float =
    if a.Length <> b.Length then
        invalidArg (nameof b) $"cosine: vectors of length {a.Length} and {b.Length}"

    let mutable dot = 0.0
    let mutable na = 0.0
    let mutable nb = 0.0

    for i in 0 .. a.Length - 1 do
        dot <- dot + float a[i] * float b[i]
        na <- na + float a[i] * float a[i]
        nb <- nb + float b[i] * float b[i]

    if na = 0.0 || nb = 0.0 then 0.0 else dot / sqrt (na * nb)

/// Euclidean distance of two vectors of equal length.
let l2 (a: float32[]) (b: float32[]) : float =
    if a.Length <> b.Length then
        invalidArg (nameof b) $"l2: vectors of length {a.Length} and {b.Length}"

    Array.fold2 (fun acc (x: float32) (y: float32) -> acc + (float x - float y) ** 2.0) 0.0 a b
    |> sqrt
