/// Distances and similarities between behavioural embeddings (delta activations and the like) and between task
/// vectors, and the sign conflicts of a set of task vectors.
module LLGBM.Algebra.Metrics

open TorchSharp

/// Cosine similarity of two vectors of equal length; 0 when either vector is zero.
[<CompiledName("Cosine")>]
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
[<CompiledName("L2")>]
let l2 (a: float32[]) (b: float32[]) : float =
    if a.Length <> b.Length then
        invalidArg (nameof b) $"l2: vectors of length {a.Length} and {b.Length}"

    Array.fold2 (fun acc (x: float32) (y: float32) -> acc + (float x - float y) ** 2.0) 0.0 a b
    |> sqrt

/// The matrix of `metric` (e.g. `cosine` or `l2`) between every pair of deltas: entry [i, j] is metric δ_i δ_j.
[<CompiledName("Pairwise")>]
let pairwise (metric: float32[] -> float32[] -> float) (deltas: float32[][]) : float[,] =
    Array2D.init deltas.Length deltas.Length (fun i j -> metric deltas[i] deltas[j])

/// Cosine similarity of two task vectors (ΔW per module, flattened; a module one lacks counts as 0); 0 when either is
/// zero.
[<CompiledName("TaskVectorCosine")>]
let taskVectorCosine (a: TaskVector) (b: TaskVector) : float =
    Scoped.value
    <| fun () ->
        let (rows, template) = TaskVector.stack [ a; b ]
        use rows = rows
        use template = template
        use _ = TorchSharp.torch.no_grad ()
        use scope = TorchSharp.torch.NewDisposeScope()
        use wide = rows.to_type TorchSharp.torch.float64
        let dot = (wide[0L] * wide[1L]).sum().item<float>()
        let na = wide[0L].square().sum().item<float>()
        let nb = wide[1L].square().sum().item<float>()
        if na = 0.0 || nb = 0.0 then 0.0 else dot / sqrt (na * nb)

/// Euclidean distance ‖τ_a − τ_b‖ between two task vectors.
[<CompiledName("TaskVectorL2")>]
let taskVectorL2 (a: TaskVector) (b: TaskVector) : float =
    Scoped.value
    <| fun () ->
        use difference = a - b
        TaskVector.norm difference

/// The sign-conflict rate of a set of task vectors (TIES-Merging, Yadav et al., NeurIPS 2023, §3 and its Figure 3):
/// the fraction of all coordinates where at least one vector is positive and another negative. Zeros take no side.
[<CompiledName("SignConflictRate")>]
let signConflictRate (vectors: seq<TaskVector>) : float =
    Scoped.value
    <| fun () ->
        let (rows, template) = TaskVector.stack vectors
        use rows = rows
        use template = template
        use _ = TorchSharp.torch.no_grad ()
        use zero = 0.0.ToScalar()
        use positive = rows.gt(zero).any(0L)
        use negative = rows.lt(zero).any(0L)
        use conflict = positive.logical_and negative
        let n = rows.shape[1]

        if n = 0L then
            0.0
        else
            float (conflict.sum().item<int64>()) / float n

/// The sign-conflict rate as the number of merged vectors k grows, TIES's Figure 3: after trimming each vector to
/// `density` (1 for no trim; `Merge.trim`), the rate of the first k vectors for k = 1 … T, as (k, rate) pairs. One
/// vector alone has no conflict.
[<CompiledName("SignConflictCurve")>]
let signConflictCurve (density: float) (vectors: seq<TaskVector>) : (int * float) list =
    Scoped.value
    <| fun () ->
        let trimmed = vectors |> Seq.map (Merge.trim density) |> Array.ofSeq

        try
            [ for k in 1 .. trimmed.Length -> k, signConflictRate trimmed[.. k - 1] ]
        finally
            for t in trimmed do
                t.Dispose()
