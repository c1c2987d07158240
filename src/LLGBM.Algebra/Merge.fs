/// Merging adapters as task vectors: ΔW per module, flattened into one vector τ_t per adapter (docs/reference.md §4).
///
/// - Linear: the (weighted) average of the task vectors (Wortsman et al., "Model soups", ICML 2022; Ilharco et al.,
///   "Editing Models with Task Arithmetic", ICLR 2023).
/// - TIES (Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", NeurIPS 2023), as its reference
///   implementation computes it, in three public steps: `trim` (keep the top k% of |τ_t| over the whole flattened
///   vector, k = 20 by default), `electSign` (γ = sign of the summed trimmed mass, zeros resolved to the overall majority
///   sign) and `disjointMean` (per coordinate, the mean of the entries that agree with γ), composed as `ties`; the merge
///   is then scaled by λ (1 in the minimal recipe).
/// - DARE (Yu et al., "Language Models are Super Mario: Absorbing Abilities from Homologous Models as a Free Lunch",
///   ICML 2024): drop each entry with probability p and rescale the survivors by 1/(1 − p), then average (`dareLinear`)
///   or elect and take the disjoint mean as TIES does, without its trim (`dareTies`).
/// - `Peft`: PEFT's `add_weighted_adapter` variants, which merge the A and the B factors separately.
///
/// Every function returns fresh tensors and leaves its inputs alone.
module LLGBM.Algebra.Merge

open System
open System.Collections.Generic
open TorchSharp
open LLGBM
open LLGBM.Lora

type private Tensor = torch.Tensor

/// The default TIES density: keep the top 20% of entries by magnitude.
[<Literal>]
let DefaultDensity = 0.2

/// How many of n entries a trim at `density` keeps: ⌈density · n⌉ (the product rounded to 9 decimals first, so that
/// 0.2 · 10 keeps 2, not 3). `density` lies in [0, 1].
[<CompiledName("KeptCount")>]
let keptCount (density: float) (n: int64) : int64 =
    if not (density >= 0.0 && density <= 1.0) then
        raise (LlgbmException $"TIES trim: the density must lie in [0, 1], found {density}.")

    int64 (ceil (Math.Round(density * float n, 9)))

/// The 1-D `flat` with all but its `k` largest-magnitude entries set to 0. Ties at the threshold go to the lower
/// indices, so exactly k entries are kept.
let private keepTop (k: int64) (flat: Tensor) : Tensor =
    let n = flat.numel ()

    if k >= n then
        flat.clone ()
    elif k <= 0L then
        torch.zeros_like flat
    else
        use magnitude = flat.abs ()
        let struct (threshold, index) = magnitude.kthvalue (n - k + 1L, 0L, false)
        use threshold = threshold
        use _ = index
        use greater = magnitude.gt threshold
        let need = k - greater.sum().item<int64>()
        use equal = magnitude.eq threshold
        use rank = equal.cumsum (0L)
        use first = equal.logical_and (rank.le (torch.tensor need))
        use mask = greater.logical_or first
        flat.mul mask

/// `keepTop` of each row of a [T, n] tensor.
let private trimRows (density: float) (stacked: Tensor) : Tensor =
    let k = keptCount density stacked.shape[1]
    torch.stack ([| for t in 0L .. stacked.shape[0] - 1L -> keepTop k stacked[t] |], 0L)

/// γ ∈ {−1, +1}^n of a [T, n] tensor: the sign of the column sums; a zero sum takes the overall majority sign (the sign
/// of the sum of the elected signs), and +1 when that is zero too.
let private electRows (stacked: Tensor) : Tensor =
    use summed = stacked.sum (0L)
    let gamma = summed.sign ()
    let majority = gamma.sum().sign().item<float32>()
    let fill = if majority = 0.0f then 1.0f else majority
    use zeroScalar = 0.0.ToScalar()
    use fillScalar = fill.ToScalar()
    use zero = gamma.eq zeroScalar
    gamma.masked_fill (zero, fillScalar)

/// Per column of a [T, n] tensor, the mean of the non-zero entries whose sign is γ's (0 where none is).
let private disjointRows (gamma: Tensor) (stacked: Tensor) : Tensor =
    use signs = stacked.sign ()
    use agreeing = signs.eq (gamma.unsqueeze (0L))
    use zero = 0.0.ToScalar()
    use one = 1.0.ToScalar()
    use nonZero = stacked.ne zero
    use keep = agreeing.logical_and nonZero
    use selected = stacked.mul keep
    use total = selected.sum (0L)
    use count = keep.sum(0L).to_type(torch.float32).clamp_min(one)
    total.div count

/// The stacked [T, n] rows of the aligned vectors with a template for unflattening; disposes nothing it is given.
let private stacked (vectors: seq<TaskVector>) (operation: string) =
    let vectors = Array.ofSeq vectors

    if vectors.Length = 0 then
        raise (LlgbmException $"Merge.{operation}: no task vectors to merge.")

    TaskVector.stack vectors

/// Weights as given (uniform when empty), checked against the number of vectors and divided by their sum times
/// `total` (1 for an average, T for TIES's relative weights).
let private normalised (operation: string) (weights: float[]) (count: int) (total: float) : float[] =
    if count = 0 then
        raise (LlgbmException $"Merge.{operation}: no task vectors to merge.")

    let weights =
        if weights.Length = 0 then
            Array.create count 1.0
        else
            weights

    if weights.Length <> count then
        raise (LlgbmException $"Merge.{operation}: {weights.Length} weights for {count} task vectors.")

    if weights |> Array.exists (fun w -> Double.IsNaN w || Double.IsInfinity w) then
        raise (LlgbmException $"Merge.{operation}: the weights must be finite, found {Listing.joined (weights)}.")

    let sum = Array.sum weights

    if sum = 0.0 then
        raise (LlgbmException $"Merge.{operation}: the weights sum to 0, so they cannot be normalised.")

    weights |> Array.map (fun w -> w / sum * total)

/// The rows of a [T, n] tensor scaled by the weights.
let private weightRows (weights: float[]) (rows: Tensor) : Tensor =
    use w = torch.tensor(weights |> Array.map float32).reshape(-1L, 1L)
    rows.mul w

/// Runs `body` on the stacked rows under no_grad and unflattens its [n] result into a task vector.
let private onRows (operation: string) (vectors: seq<TaskVector>) (body: Tensor -> Tensor) : TaskVector =
    let (rows, template) = stacked vectors operation
    use rows = rows
    use template = template
    use _ = torch.no_grad ()

    use merged =
        // The steps' temporaries (row views, masks, stacked trims) die with this scope.
        use scope = torch.NewDisposeScope()
        (body rows).MoveToOuterDisposeScope()

    TaskVector.unflattenLike template merged

/// The weighted average Σ_t w_t τ_t / Σ_t w_t (weights relative; empty for uniform).
[<CompiledName("WeightedAverage")>]
let weightedAverage (weights: seq<float>) (vectors: seq<TaskVector>) : TaskVector =
    let vectors = Array.ofSeq vectors
    let w = normalised "weightedAverage" (Array.ofSeq weights) vectors.Length 1.0

    onRows "weightedAverage" vectors (fun rows ->
        use weighted = weightRows w rows
        weighted.sum (0L))

/// The average (1/T) Σ_t τ_t: the linear merge with uniform weights, computed as the sum (in order) divided by T.
[<CompiledName("Average")>]
let average (vectors: seq<TaskVector>) : TaskVector =
    let vectors = Array.ofSeq vectors

    onRows "average" vectors (fun rows ->
        use total = rows.sum (0L)
        use count = (float vectors.Length).ToScalar()
        total.div count)

/// TIES step 1, trim: τ with all but its ⌈density · n⌉ largest-magnitude entries (over the whole flattened vector, all
/// modules together, as the reference implementation does) set to 0; among equal magnitudes at the threshold the
/// earlier entries (in `TaskVector.flatten` order) are kept, so exactly that many entries survive.
[<CompiledName("Trim")>]
let trim (density: float) (tau: TaskVector) : TaskVector =
    Scoped.vector
    <| fun () ->
        let k = keptCount density tau.Numel
        use _ = torch.no_grad ()
        use flat = TaskVector.flatten tau
        use kept = keepTop k flat
        TaskVector.unflattenLike tau kept

/// TIES step 2, elect sign: γ = sign(Σ_t τ̂_t) per entry, the sign of the summed mass. An entry whose sum is 0 takes the
/// overall majority sign, sign(Σ_i γ_i), as the reference implementation resolves it; where that is 0 too, +1. So every
/// entry of γ is −1 or +1. The result is a task vector of signs over the union of the inputs' modules.
[<CompiledName("ElectSign")>]
let electSign (trimmed: seq<TaskVector>) : TaskVector = onRows "electSign" trimmed electRows

/// TIES step 3, disjoint mean: per entry, the mean of the non-zero entries τ̂_t whose sign is γ's, divided by their
/// count (at least 1), so an entry no vector agrees on is 0. `gamma` is a vector of signs over the same modules (as
/// `electSign` gives); where γ is 0 nothing agrees.
[<CompiledName("DisjointMean")>]
let disjointMean (gamma: TaskVector) (trimmed: seq<TaskVector>) : TaskVector =
    let trimmed = Array.ofSeq trimmed

    onRows "disjointMean" trimmed (fun rows ->
        use g = TaskVector.flatten gamma

        if g.numel () <> rows.shape[1] then
            raise (
                LlgbmException
                    $"Merge.disjointMean: γ has {g.numel ()} entries but the task vectors have {rows.shape[1]}."
            )

        disjointRows g rows)

/// TIES-Merging of the task vectors: trim each to `density`, elect γ, take the disjoint mean (λ = 1; scale the result
/// for another λ). Equivalent to `disjointMean (electSign trimmed) trimmed` with `trimmed = vectors |> map (trim d)`.
[<CompiledName("Ties")>]
let ties (density: float) (vectors: seq<TaskVector>) : TaskVector =
    let vectors = Array.ofSeq vectors
    keptCount density 0L |> ignore

    onRows "ties" vectors (fun rows ->
        use trimmed = trimRows density rows
        use gamma = electRows trimmed
        disjointRows gamma trimmed)

/// TIES with relative weights: each τ_t is first scaled by w_t · T / Σ w (so uniform weights give `ties`), as mergekit
/// weights the vectors before the sign vote; the disjoint mean still divides by the count of agreeing entries, as the
/// paper does (mergekit divides by the sum of the agreeing weights instead).
[<CompiledName("TiesWeighted")>]
let tiesWeighted (density: float) (weights: seq<float>) (vectors: seq<TaskVector>) : TaskVector =
    let vectors = Array.ofSeq vectors

    let w =
        normalised "tiesWeighted" (Array.ofSeq weights) vectors.Length (float vectors.Length)

    keptCount density 0L |> ignore

    onRows "tiesWeighted" vectors (fun rows ->
        use weighted = weightRows w rows
        use trimmed = trimRows density weighted
        use gamma = electRows trimmed
        disjointRows gamma trimmed)

/// DARE's drop-and-rescale of a 1-D tensor: each entry kept when a uniform draw is at least p, survivors divided by
/// 1 − p, so the expectation is the input.
let private dropRow (p: float) (seed: int64) (flat: Tensor) : Tensor =
    if not (p >= 0.0 && p < 1.0) then
        raise (LlgbmException $"DARE: the drop probability must lie in [0, 1), found {p}.")

    use generator = new torch.Generator(uint64 seed)

    use draws =
        torch.rand ([| flat.numel () |], dtype = torch.float64, generator = generator)

    use threshold = p.ToScalar()
    use survival = (1.0 - p).ToScalar()
    use keep = draws.ge threshold
    use kept = flat.mul keep
    kept.div survival

/// DARE (drop and rescale) of one task vector: every entry dropped (set to 0) with probability p, independently, the
/// survivors multiplied by 1/(1 − p), so that E[dare p τ] = τ; p = 0 returns τ. Seeded: the same seed gives the same
/// mask.
[<CompiledName("Dare")>]
let dare (p: float) (seed: int64) (tau: TaskVector) : TaskVector =
    Scoped.vector
    <| fun () ->
        use _ = torch.no_grad ()
        use flat = TaskVector.flatten tau
        use dropped = dropRow p seed flat
        TaskVector.unflattenLike tau dropped

let private dareRows (p: float) (seed: int64) (rows: Tensor) : Tensor =
    torch.stack (
        [|
            for t in 0 .. int rows.shape[0] - 1 -> dropRow p (Seeds.derive seed t) rows[int64 t]
        |],
        0L
    )

/// DARE then the weighted average: τ_t ← dare p (seed of t) τ_t, then Σ w_t τ_t / Σ w (weights relative; empty for
/// uniform). Vector t draws its mask with `Seeds.derive seed t`.
[<CompiledName("DareLinear")>]
let dareLinear (p: float) (seed: int64) (weights: seq<float>) (vectors: seq<TaskVector>) : TaskVector =
    let vectors = Array.ofSeq vectors
    let w = normalised "dareLinear" (Array.ofSeq weights) vectors.Length 1.0

    onRows "dareLinear" vectors (fun rows ->
        use dropped = dareRows p seed rows
        use weighted = weightRows w dropped
        weighted.sum (0L))

/// DARE-TIES: DARE (drop with probability p and rescale) in place of TIES's trim, then `electSign` and
/// `disjointMean`. Weights are relative as in `tiesWeighted` (empty for uniform).
[<CompiledName("DareTies")>]
let dareTies (p: float) (seed: int64) (weights: seq<float>) (vectors: seq<TaskVector>) : TaskVector =
    let vectors = Array.ofSeq vectors

    let w =
        normalised "dareTies" (Array.ofSeq weights) vectors.Length (float vectors.Length)

    onRows "dareTies" vectors (fun rows ->
        use weighted = weightRows w rows
        use dropped = dareRows p seed weighted
        use gamma = electRows dropped
        disjointRows gamma dropped)

/// A merge method on ΔW.
type Method =
    /// The (weighted) average.
    | Linear
    /// TIES-Merging (trim, elect sign, disjoint mean).
    | Ties
    /// DARE, then the (weighted) average.
    | Dare
    /// DARE, then elect sign and disjoint mean.
    | DareTies

    /// The method's name on the command line: linear, ties, dare, dare-ties.
    member this.Name =
        match this with
        | Linear -> "linear"
        | Ties -> "ties"
        | Dare -> "dare"
        | DareTies -> "dare-ties"

    /// The method named `name` (linear, ties, dare or dare-ties).
    static member Parse(name: string) =
        match name with
        | "linear" -> Linear
        | "ties" -> Ties
        | "dare" -> Dare
        | "dare-ties" -> DareTies
        | other -> raise (LlgbmException $"Merge method \"{other}\": expected linear, ties, dare or dare-ties.")

/// A merge: the method, its density, weights, seed and the scale λ of the result.
type Settings = {
    /// The method.
    Method: Method
    /// The fraction of entries kept: TIES's trim density k (default 0.2), or DARE's 1 − p. Unused by linear.
    Density: float
    /// Relative weights, one per task vector; empty for uniform. Linear and DARE divide them by their sum (a
    /// weighted average); TIES and DARE-TIES scale them to mean 1 and apply them before the sign vote.
    Weights: float[]
    /// The seed of DARE's drop masks.
    Seed: int64
    /// λ: the merged task vector is multiplied by it (TIES's scaling; 1 in the minimal recipe).
    Lambda: float
} with

    /// The settings of `method` with density 0.2, uniform weights, seed 0 and λ = 1.
    static member Of(method: Method) = {
        Method = method
        Density = DefaultDensity
        Weights = [||]
        Seed = 0L
        Lambda = 1.0
    }

    /// A short description, e.g. "ties (density 0.2)".
    member this.Describe() =
        let weights =
            if this.Weights.Length = 0 then
                ""
            else
                ", weights " + String.Join(" ", this.Weights)

        let lambda = if this.Lambda = 1.0 then "" else $", λ {this.Lambda}"

        match this.Method with
        | Linear -> $"linear{weights}{lambda}"
        | m -> $"{m.Name} (density {this.Density}{weights}{lambda})"

/// Merges the task vectors as `settings` say. λ must be finite, and so must every module of the result: a merge that
/// overflows stops with an error naming the module rather than returning NaN or ±∞.
[<CompiledName("Run")>]
let merge (settings: Settings) (vectors: seq<TaskVector>) : TaskVector =
    if not (Double.IsFinite settings.Lambda) then
        raise (LlgbmException $"Merge: λ must be a finite number, found {settings.Lambda}.")

    let merged =
        match settings.Method with
        | Linear -> weightedAverage settings.Weights vectors
        | Ties -> tiesWeighted settings.Density settings.Weights vectors
        | Dare -> dareLinear (1.0 - settings.Density) settings.Seed settings.Weights vectors
        | DareTies -> dareTies (1.0 - settings.Density) settings.Seed settings.Weights vectors

    let scaled =
        if settings.Lambda = 1.0 then
            merged
        else
            use merged = merged
            settings.Lambda * merged

    try
        for path in scaled.Paths do
            FiniteCheck.Tensor(scaled[path], $"Merge ({settings.Describe()}): the merged ΔW of {path}")

        scaled
    with _ ->
        scaled.Dispose()
        reraise ()

/// PEFT's `add_weighted_adapter` with combination types linear, ties, dare_linear and dare_ties
/// (src/peft/tuners/lora/model.py), which merge the A factors and the B factors *separately*, module by module: with
/// w'_t = √(w_t · scale_t) folded into both, A_new = merge(w'_t A_t) and B_new = merge(w'_t B_t), scale 1 (PEFT sets
/// lora_alpha = r). So B_new · A_new is not the merge of the ΔW (a linear merge of two adapters carries the cross terms
/// B_1 A_2 and B_2 A_1). Computed as PEFT computes it: every adapter of a module must have the same rank; magnitude
/// pruning keeps ⌊density · numel⌋ entries per factor (no pruning at density ≥ 1); signs are elected on the pruned,
/// unweighted factors ("total": sign of the sum, ≥ 0 → +1); the weighted agreeing entries are summed and divided by
/// their count. Weights are used as given (PEFT does not normalise them). A module that some adapters lack is merged
/// over those that have it.
module Peft =

    let private pruneMagnitude (density: float) (t: Tensor) : Tensor =
        if density >= 1.0 then
            t.clone ()
        else
            if density < 0.0 then
                raise (LlgbmException $"PEFT merge: the density must be at least 0, found {density}.")

            let k = int64 (floor (density * float (t.numel ())))
            use flat = t.reshape (-1L)
            use kept = keepTop k flat
            kept.reshape t.shape

    let private pruneRandom (density: float) (seed: int64) (t: Tensor) : Tensor =
        if density >= 1.0 then
            t.clone ()
        else
            if density <= 0.0 then
                raise (LlgbmException $"PEFT merge: DARE needs a density in (0, 1], found {density}.")

            use flat = t.reshape (-1L)
            use kept = dropRow (1.0 - density) seed flat
            kept.reshape t.shape

    /// Per entry of stacked [T, …] factors: sign(Σ_t x_t) with ≥ 0 → +1, then the mean of the weighted entries whose
    /// sign agrees.
    let private electAndMerge (pruned: Tensor) (weighted: Tensor) : Tensor =
        use summed = pruned.sum (0L)

        use zero = 0.0.ToScalar()
        use one = 1.0.ToScalar()

        use majority =
            torch.where (summed.ge zero, torch.ones_like summed, torch.ones_like(summed).neg())

        use signs = pruned.sign ()
        use mask = signs.eq (majority.unsqueeze (0L))
        use selected = weighted.mul mask
        use total = selected.sum (0L)
        use count = mask.sum(0L).to_type(torch.float32).clamp_min(one)
        total.div count

    let private weightsOf (count: int) (weights: seq<float>) =
        let weights = Array.ofSeq weights

        let weights =
            if weights.Length = 0 then
                Array.create count 1.0
            else
                weights

        if weights.Length <> count then
            raise (LlgbmException $"PEFT merge: {weights.Length} weights for {count} adapters.")

        weights

    /// Merges module by module with `combine (factor index 0 = A, 1 = B) (module index) (stacked factors) (w')`.
    let private merged
        (operation: string)
        (weights: seq<float>)
        (adapters: seq<LoraSet>)
        (combine: int -> int -> Tensor -> Tensor -> Tensor)
        : LoraSet =
        let adapters = Array.ofSeq adapters

        if adapters.Length = 0 then
            raise (LlgbmException $"PEFT {operation}: no adapters to merge.")

        let weights = weightsOf adapters.Length weights

        let paths =
            adapters
            |> Seq.collect (fun a -> a.Modules.Keys)
            |> Seq.distinct
            |> Seq.sortWith (fun a b -> String.CompareOrdinal(a, b))
            |> Array.ofSeq

        use _ = torch.no_grad ()

        let modules =
            paths
            |> Array.mapi (fun index path ->
                let present =
                    adapters
                    |> Array.mapi (fun t a -> t, a.Get path)
                    |> Array.choose (fun (t, m) ->
                        match m with
                        | null -> None
                        | m when isNull m.A ->
                            raise (
                                LlgbmException
                                    $"PEFT {operation}: module {path} of adapter {t} is a dense ΔW; PEFT merges low-rank factors."
                            )
                        | m -> Some(t, m))

                let ranks = present |> Array.map (fun (_, m) -> m.Rank) |> Array.distinct

                if ranks.Length > 1 then
                    raise (
                        LlgbmException(
                            $"PEFT {operation}: module {path} has ranks {Listing.joined (ranks)} in the adapters; "
                            + $"PEFT needs one rank for linear, ties, dare_linear and dare_ties."
                        )
                    )

                let w' =
                    present
                    |> Array.map (fun (t, m) ->
                        let product = weights[t] * m.Scale

                        if product < 0.0 then
                            raise (
                                LlgbmException
                                    $"PEFT {operation}: weight {weights[t]} times scale {m.Scale} is negative; PEFT folds its square root into A and B."
                            )

                        sqrt product)

                let factor (which: int) =
                    use scope = torch.NewDisposeScope()

                    let parts = [|
                        for (_, m) in present ->
                            let f = if which = 0 then m.A else m.B
                            (nonNull f).detach().``to``(torch.float32, torch.CPU)
                    |]

                    use stackedFactors = torch.stack (parts, 0L)

                    for p in parts do
                        p.Dispose()

                    use wt = torch.tensor (w' |> Array.map float32)
                    (combine which index stackedFactors wt).MoveToOuterDisposeScope()

                let a = factor 0
                let b = factor 1
                KeyValuePair.Create(path, LoraModule.LowRank(a, b, 1.0)))

        new LoraSet(Dictionary(modules, StringComparer.Ordinal), true)

    let private broadcast (w: Tensor) (stacked: Tensor) =
        w.reshape ([| yield w.shape[0]; for _ in 1 .. int (stacked.dim ()) - 1 -> 1L |])

    /// PEFT `linear`: A_new = Σ_t w'_t A_t, B_new = Σ_t w'_t B_t.
    [<CompiledName("Linear")>]
    let linear (weights: seq<float>) (adapters: seq<LoraSet>) : LoraSet =
        merged "linear" weights adapters (fun _ _ stacked w ->
            use wb = broadcast w stacked
            use weighted = stacked.mul wb
            weighted.sum (0L))

    /// PEFT `ties`: magnitude-prune each factor to `density`, elect signs, take the disjoint mean of the weighted
    /// factors.
    [<CompiledName("Ties")>]
    let ties (density: float) (weights: seq<float>) (adapters: seq<LoraSet>) : LoraSet =
        merged "ties" weights adapters (fun _ _ stacked w ->
            use pruned =
                torch.stack ([| for t in 0L .. stacked.shape[0] - 1L -> pruneMagnitude density stacked[t] |], 0L)

            use wb = broadcast w pruned
            use weighted = pruned.mul wb
            electAndMerge pruned weighted)

    let private randomPruned (density: float) (seed: int64) (which: int) (index: int) (stacked: Tensor) =
        torch.stack (
            [|
                for t in 0 .. int stacked.shape[0] - 1 ->
                    pruneRandom density (Seeds.derive (Seeds.derive (Seeds.derive seed index) which) t) stacked[int64 t]
            |],
            0L
        )

    /// PEFT `dare_linear`: each factor's entries kept with probability `density` and rescaled by 1/density, then the
    /// weighted sum. Factor f of module m of adapter t draws its mask from `Seeds.derive` of the seed, m, f and t.
    [<CompiledName("DareLinear")>]
    let dareLinear (density: float) (seed: int64) (weights: seq<float>) (adapters: seq<LoraSet>) : LoraSet =
        merged "dare_linear" weights adapters (fun which index stacked w ->
            use pruned = randomPruned density seed which index stacked
            use wb = broadcast w pruned
            use weighted = pruned.mul wb
            weighted.sum (0L))

    /// PEFT `dare_ties`: DARE's random pruning of each factor, then sign election and the disjoint mean.
    [<CompiledName("DareTies")>]
    let dareTies (density: float) (seed: int64) (weights: seq<float>) (adapters: seq<LoraSet>) : LoraSet =
        merged "dare_ties" weights adapters (fun which index stacked w ->
            use pruned = randomPruned density seed which index stacked
            use wb = broadcast w pruned
            use weighted = pruned.mul wb
            electAndMerge pruned weighted)

    /// The PEFT factor merge that `settings` names (weights, density and seed as given; λ scales B).
    [<CompiledName("Run")>]
    let merge (settings: Settings) (adapters: seq<LoraSet>) : LoraSet =
        let result =
            match settings.Method with
            | Linear -> linear settings.Weights adapters
            | Ties -> ties settings.Density settings.Weights adapters
            | Dare -> dareLinear settings.Density settings.Seed settings.Weights adapters
            | DareTies -> dareTies settings.Density settings.Seed settings.Weights adapters

        if settings.Lambda = 1.0 then
            result
        else
            use result = result
            use lambda = settings.Lambda.ToScalar()

            let modules =
                Dictionary(
                    [
                        for KeyValue(path, m) in result.Modules ->
                            KeyValuePair.Create(
                                path,
                                LoraModule.LowRank((nonNull m.A).clone(), (nonNull m.B).mul lambda, m.Scale)
                            )
                    ],
                    StringComparer.Ordinal
                )

            new LoraSet(modules, true)
