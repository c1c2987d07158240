/// Composing behaviours: arithmetic on delta activations (float32[] of length D) and on task vectors (ΔW per module).
///
/// Delta activations are the behavioural embeddings of Delta Activations (arXiv 2509.04442), which
/// reports them additive: the delta of an adapter trained on mixed data is close to the sum of its parts' deltas.
/// Task-vector arithmetic is that of Ilharco et al., "Editing Models with Task Arithmetic" (ICLR 2023): adding task
/// vectors adds skills, negating one removes a skill. Interpolating between two weight changes is WiSE-FT's weight-space
/// ensembling (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022).
module LLGBM.Algebra.Compose

open LLGBM

let private sameLength (operation: string) (a: float32[]) (b: float32[]) =
    if a.Length <> b.Length then
        raise (LlgbmException $"Compose.{operation}: deltas of length {a.Length} and {b.Length}.")

/// δ_a + δ_b.
[<CompiledName("Add")>]
let add (a: float32[]) (b: float32[]) : float32[] =
    sameLength "add" a b
    Array.map2 (+) a b

/// δ_a − δ_b.
[<CompiledName("Subtract")>]
let sub (a: float32[]) (b: float32[]) : float32[] =
    sameLength "sub" a b
    Array.map2 (-) a b

/// s · δ.
[<CompiledName("Scale")>]
let scale (s: float) (delta: float32[]) : float32[] =
    delta |> Array.map (fun x -> float32 (s * float x))

/// (1 − t) · δ_a + t · δ_b: δ_a at t = 0, δ_b at t = 1 (computed in float64 per entry).
[<CompiledName("Interpolate")>]
let interpolate (t: float) (a: float32[]) (b: float32[]) : float32[] =
    sameLength "interpolate" a b
    Array.map2 (fun (x: float32) (y: float32) -> float32 ((1.0 - t) * float x + t * float y)) a b

/// Σ_i δ_i (accumulated in float64); at least one delta.
[<CompiledName("Sum")>]
let sum (deltas: seq<float32[]>) : float32[] =
    let deltas = Array.ofSeq deltas

    if deltas.Length = 0 then
        raise (LlgbmException "Compose.sum: no deltas.")

    let n = deltas[0].Length

    for d in deltas do
        sameLength "sum" deltas[0] d

    Array.init n (fun j -> deltas |> Array.sumBy (fun d -> float d[j]) |> float32)

/// The mean delta (1/n) Σ_i δ_i (accumulated in float64); at least one delta.
[<CompiledName("Mean")>]
let mean (deltas: seq<float32[]>) : float32[] =
    let deltas = Array.ofSeq deltas

    if deltas.Length = 0 then
        raise (LlgbmException "Compose.mean: no deltas.")

    let n = deltas[0].Length

    for d in deltas do
        sameLength "mean" deltas[0] d

    Array.init n (fun j -> (deltas |> Array.sumBy (fun d -> float d[j])) / float deltas.Length |> float32)

/// The deltas with their mean removed, δ_i − mean(δ): what sets each one apart from the component the whole set
/// shares (the "average adapter" that a collapsed generator reproduces, docs/reference.md §6).
[<CompiledName("Centre")>]
let centre (deltas: seq<float32[]>) : float32[][] =
    let deltas = Array.ofSeq deltas
    let m = mean deltas
    deltas |> Array.map (fun d -> sub d m)

/// Task-vector arithmetic on ΔW per module (Ilharco et al. 2023). A module one vector lacks counts as ΔW = 0; every
/// result is a fresh vector. The same operations are the operators of `TaskVector` (`a + b`, `a - b`, `s * a`, `-a`).
module TaskVectors =

    /// τ_a + τ_b.
    [<CompiledName("Add")>]
    let add (a: TaskVector) (b: TaskVector) : TaskVector = a + b

    /// τ_a − τ_b.
    [<CompiledName("Subtract")>]
    let sub (a: TaskVector) (b: TaskVector) : TaskVector = a - b

    /// s · τ.
    [<CompiledName("Scale")>]
    let scale (s: float) (tau: TaskVector) : TaskVector = s * tau

    /// −τ: the negated task vector, which removes the skill τ adds (Ilharco et al. 2023, "forgetting via negation").
    [<CompiledName("Negate")>]
    let negate (tau: TaskVector) : TaskVector = -tau

    /// (1 − t) · τ_a + t · τ_b (WiSE-FT's interpolation of weight changes).
    [<CompiledName("Interpolate")>]
    let interpolate (t: float) (a: TaskVector) (b: TaskVector) : TaskVector =
        use left = (1.0 - t) * a
        use right = t * b
        left + right

    /// Σ_t w_t · τ_t (task arithmetic with scaling coefficients); as many weights as vectors, at least one vector.
    [<CompiledName("WeightedSum")>]
    let weightedSum (weights: seq<float>) (vectors: seq<TaskVector>) : TaskVector =
        Scoped.vector
        <| fun () ->
            let weights = Array.ofSeq weights
            let (stacked, template) = TaskVector.stack vectors
            use stacked = stacked
            use template = template

            if weights.Length <> int stacked.shape[0] then
                raise (LlgbmException $"Task vectors: {weights.Length} weights for {stacked.shape[0]} vectors.")

            use _ = TorchSharp.torch.no_grad ()
            use w = TorchSharp.torch.tensor(weights |> Array.map float32).reshape(-1L, 1L)
            use summed = (stacked * w).sum(0L)
            TaskVector.unflattenLike template summed

    /// Σ_t τ_t.
    [<CompiledName("Sum")>]
    let sum (vectors: seq<TaskVector>) : TaskVector =
        let vectors = Array.ofSeq vectors
        weightedSum (Array.create vectors.Length 1.0) vectors

    /// (1/T) Σ_t τ_t.
    [<CompiledName("Mean")>]
    let mean (vectors: seq<TaskVector>) : TaskVector =
        let vectors = Array.ofSeq vectors

        if vectors.Length = 0 then
            raise (LlgbmException "Task vectors: the mean of no vectors.")

        weightedSum (Array.create vectors.Length (1.0 / float vectors.Length)) vectors

    /// The vectors with their mean removed, τ_t − mean(τ).
    [<CompiledName("Centre")>]
    let centre (vectors: seq<TaskVector>) : TaskVector[] =
        let vectors = Array.ofSeq vectors
        use m = mean vectors
        vectors |> Array.map (fun v -> v - m)
