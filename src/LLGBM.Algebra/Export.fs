/// Turning a task vector (a merge, a control) back into an adapter: a PEFT LoRA adapter by truncated SVD, with the
/// relative reconstruction error reported, or a dense LoRA set for evaluation (`TaskVector.toDenseLora`).
///
/// The truncation is the Eckart–Young–Mirsky best rank-r approximation, as PEFT's `*_svd` merges compute it
/// (src/peft/tuners/lora/model.py): ΔW ≈ U_r S_r V_rᵀ. The factors are split evenly, B = U_r √S_r and A = √S_r V_rᵀ,
/// with scale 1 (alpha = r).
module LLGBM.Algebra.Export

open System
open System.Collections.Generic
open TorchSharp
open LLGBM
open LLGBM.Lora

/// How well one module's rank-r factors reproduce its ΔW.
type ModuleTruncation = {
    /// The module's path.
    Path: string
    /// The rank kept: min(r, out, in).
    Rank: int
    /// ‖ΔW − B·A‖_F / ‖ΔW‖_F (0 when ΔW = 0).
    RelativeError: float
}

/// A task vector truncated to a low-rank adapter.
type LowRankAdapter = {
    /// The adapter (low-rank modules with scale 1); it owns its tensors.
    Adapter: LoraSet
    /// The config to save it with: r = the requested rank, alpha = r (modules of smaller rank are saved with
    /// PEFT's rank_pattern and alpha_pattern).
    Config: LoraConfig
    /// The requested rank.
    Rank: int
    /// ‖τ − τ_r‖ / ‖τ‖ over every module together (0 when τ = 0).
    RelativeError: float
    /// Each module's truncation, in path order.
    Modules: ModuleTruncation list
} with

    interface IDisposable with
        member this.Dispose() = this.Adapter.Dispose()

/// The best rank-`rank` factors of every module's ΔW (computed in float64, stored as float32), with the relative
/// reconstruction error of each module and of the whole vector, measured on the reconstruction B·A itself.
[<CompiledName("LowRank")>]
let lowRank (rank: int) (tau: TaskVector) : LowRankAdapter =
    if rank < 1 then
        raise (LlgbmException $"Low-rank export: the rank must be at least 1, found {rank}.")

    use _ = torch.no_grad ()
    let mutable errorSquared = 0.0
    let mutable normSquared = 0.0

    let parts = [|
        for path in tau.Paths ->
            use scope = torch.NewDisposeScope()
            let delta = tau[path]

            if delta.dim () <> 2L then
                raise (
                    LlgbmException
                        $"Low-rank export: module {path} is [{Listing.joined (delta.shape)}]; a LoRA module's ΔW is [out, in]."
                )

            FiniteCheck.Tensor(delta, $"Low-rank export: the ΔW of module {path}")
            let w = delta.to_type torch.float64
            let r = min (int64 rank) (min w.shape[0] w.shape[1])
            let struct (u, s, vh) = torch.linalg.svd (w, false)
            let root = s.narrow(0L, 0L, r).sqrt()
            let b = u.narrow(1L, 0L, r).mul(root.unsqueeze 0L)
            let a = vh.narrow(0L, 0L, r).mul(root.unsqueeze 1L)
            let difference = (b.matmul a).sub w
            let error = difference.square().sum().item<float>()
            let norm = w.square().sum().item<float>()
            errorSquared <- errorSquared + error
            normSquared <- normSquared + norm

            let truncation = {
                Path = path
                Rank = int r
                RelativeError = if norm = 0.0 then 0.0 else sqrt (error / norm)
            }

            let a32 = a.to_type(torch.float32).MoveToOuterDisposeScope()
            let b32 = b.to_type(torch.float32).MoveToOuterDisposeScope()
            truncation, KeyValuePair.Create(path, LoraModule.LowRank(a32, b32, 1.0))
    |]

    let modules = Dictionary(parts |> Array.map snd, StringComparer.Ordinal)

    let targets =
        tau.Paths
        |> Array.choose (fun p ->
            let parsed = LoraTarget.Parse p

            if parsed.HasValue then
                let struct (_, name) = parsed.Value
                Some name
            else
                None)
        |> Array.distinct

    let config =
        LoraConfig(
            Rank = rank,
            Alpha = float rank,
            TargetModules =
                (if targets.Length = 0 then
                     LoraConfig().TargetModules
                 else
                     targets)
        )

    {
        Adapter = new LoraSet(modules, true)
        Config = config
        Rank = rank
        RelativeError =
            if normSquared = 0.0 then
                0.0
            else
                sqrt (errorSquared / normSquared)
        Modules = parts |> Array.map fst |> List.ofArray
    }

/// Truncates τ to rank `rank` (see `lowRank`) and writes it to `dir` as a PEFT adapter (float32); returns the
/// truncation with its errors. `baseModel` is recorded as base_model_name_or_path (null for none).
[<CompiledName("SavePeft")>]
let savePeft (dir: string) (rank: int) (baseModel: string) (tau: TaskVector) : LowRankAdapter =
    let truncated = lowRank rank tau

    try
        PeftAdapter.Save(dir, truncated.Config, truncated.Adapter, baseModel)
        truncated
    with _ ->
        truncated.Adapter.Dispose()
        reraise ()
