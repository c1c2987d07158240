/// Controls that tell a real effect from an artefact: shuffled delta targets (the conditioning carries no information
/// about the target), random adapters of matched norm (a change of the same size in no particular direction), and the
/// mean teacher adapter (the average that a collapsed generator reproduces; the public Drag-and-Drop LLMs replication
/// report, issue #4 of jerryliang24/Drag-and-Drop-LLMs). Shuffled labels as a control follow Zhang et al.,
/// "Understanding deep learning requires rethinking generalization" (ICLR 2017); the matched-norm random direction
/// follows the random-direction baselines of Ilharco et al., "Editing Models with Task Arithmetic" (ICLR 2023).
module LLGBM.Algebra.Controls

open System
open System.Collections.Generic
open TorchSharp
open LLGBM
open LLGBM.Lora

/// The targets moved across keys by a seeded cyclic permutation (Sattolo's algorithm, `Seeds.cycle`): key i gets the
/// target of key cycle[i], so with two keys or more no key keeps its own target, and the targets are a permutation of
/// the input's. Keys must be distinct; pass one entry per task (its delta, or the list of its checkpoints' deltas) to
/// shuffle delta targets across tasks.
[<CompiledName("ShuffleTargets")>]
let shuffleTargets (seed: int64) (pairs: seq<'Key * 'Target>) : ('Key * 'Target)[] =
    let pairs = Array.ofSeq pairs
    let keys = pairs |> Array.map fst

    match keys |> Array.countBy id |> Array.tryFind (fun (_, n) -> n > 1) with
    | Some(key, n) ->
        raise (LlgbmException $"Shuffled targets: key {key} appears {n} times; give one entry per key (task).")
    | None -> ()

    let cycle = Seeds.cycle seed pairs.Length
    pairs |> Array.mapi (fun i (key, _) -> key, snd pairs[cycle[i]])

/// The mean teacher: the average task vector of the teachers (`Merge.average`).
[<CompiledName("MeanTeacher")>]
let meanTeacher (teachers: seq<TaskVector>) : TaskVector = Merge.average teachers

/// The mean teacher's delta activation: the mean of the teachers' deltas (`Compose.mean`).
[<CompiledName("MeanDelta")>]
let meanDelta (deltas: seq<float32[]>) : float32[] = Compose.mean deltas

let private frobenius (t: torch.Tensor) =
    use wide = t.to_type torch.float64
    wide.square().sum().item<float>() |> sqrt

/// A tensor of `shape` with N(0, 1) entries from `generator`, rescaled to Frobenius norm `norm` (zeros for norm 0).
let private gaussianWithNorm (generator: torch.Generator) (shape: int64[]) (norm: float) =
    use draw = torch.randn (shape, dtype = torch.float32, generator = generator)
    let drawn = frobenius draw
    use factor = (if drawn = 0.0 then 0.0 else norm / drawn).ToScalar()
    draw.mul factor

/// A random task vector with the modules and shapes of `reference` whose every module has the reference's Frobenius
/// norm: N(0, 1) entries rescaled. Module i (in path order) draws from `Seeds.derive seed i`.
[<CompiledName("RandomTaskVector")>]
let randomTaskVector (seed: int64) (reference: TaskVector) : TaskVector =
    Scoped.vector
    <| fun () ->
        use _ = torch.no_grad ()

        new TaskVector(
            [
                for i, path in Array.indexed reference.Paths ->
                    use generator = new torch.Generator(uint64 (Seeds.derive seed i))
                    path, gaussianWithNorm generator reference[path].shape (frobenius reference[path])
            ]
        )

/// A random LoRA adapter shaped like `reference` (the same modules, ranks and scales) whose every module's
/// ΔW = scale · B · A has the Frobenius norm of the reference module's ΔW: A and B drawn N(0, 1), then B rescaled.
/// Dense modules get a dense random ΔW of matched norm. Module i (in path order) draws from `Seeds.derive seed i`;
/// float32 on the CPU; the set owns its tensors.
[<CompiledName("RandomAdapter")>]
let randomAdapter (seed: int64) (reference: LoraSet) : LoraSet =
    Scoped.lora
    <| fun () ->
        if reference.IsBatched then
            raise (LlgbmException "Random adapter: the reference holds per-example adapters; give one adapter.")

        use _ = torch.no_grad ()

        let paths =
            reference.Modules.Keys
            |> Seq.sortWith (fun a b -> String.CompareOrdinal(a, b))
            |> Array.ofSeq

        let modules =
            paths
            |> Array.mapi (fun i path ->
                let m = reference.Modules[path]
                use target = m.DeltaWeight()
                let norm = frobenius target
                use generator = new torch.Generator(uint64 (Seeds.derive seed i))

                match m.Delta with
                | null ->
                    let a = nonNull m.A
                    let b = nonNull m.B
                    let newA = torch.randn (a.shape, dtype = torch.float32, generator = generator)
                    use rawB = torch.randn (b.shape, dtype = torch.float32, generator = generator)
                    use scale = m.Scale.ToScalar()
                    use product = rawB.matmul(newA).mul scale
                    let drawn = frobenius product
                    use factor = (if drawn = 0.0 then 0.0 else norm / drawn).ToScalar()
                    let newB = rawB.mul factor
                    KeyValuePair.Create(path, LoraModule.LowRank(newA, newB, m.Scale))
                | dense -> KeyValuePair.Create(path, LoraModule.Dense(gaussianWithNorm generator dense.shape norm)))

        new LoraSet(Dictionary(modules, StringComparer.Ordinal), true)
