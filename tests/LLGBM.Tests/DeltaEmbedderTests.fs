module LLGBM.Tests.DeltaEmbedderTests

open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Tests.TestModels

/// Probes of unequal lengths, so a batch of them is padded.
let probes: int list list = [ [ 1; 2; 3; 4; 5 ]; [ 7; 8 ]; [ 10; 11; 12; 13; 14; 15; 16; 17 ]; [ 3 ] ]

let private asIds
    (ps: int list list)
    : System.Collections.Generic.IReadOnlyList<System.Collections.Generic.IReadOnlyList<int>> =
    ps
    |> List.map (fun p -> Array.ofList p :> System.Collections.Generic.IReadOnlyList<int>)
    |> Array.ofList
    :> _

let private everyModule = [
    for layer in 0..1 do
        for name in LoraTarget.All -> layer, name
]

let private adapter seed =
    randomLora Qwen2Presets.Micro seed 4L 0.3 2.0 everyModule

/// The naive delta: each probe alone (no padding, no mask), adapted minus base hidden state `pick` pooled by
/// `pool`, averaged over probes.
let private naive
    (model: Qwen2ForCausalLM)
    (lora: LoraSet)
    (ps: int list list)
    (pick: Qwen2Output -> torch.Tensor)
    (pool: torch.Tensor -> torch.Tensor)
    =
    use _ = torch.no_grad ()

    let diffs = [
        for p in ps ->
            use ids = torch.tensor(Array.ofList (List.map int64 p)).reshape(1L, -1L)
            use baseOut = model.Forward(ids, ForwardOptions(OutputHiddenStates = true))

            use adaptedOut =
                model.Forward(ids, ForwardOptions(OutputHiddenStates = true, Lora = lora))

            pool ((pick adaptedOut)[0]) - pool ((pick baseOut)[0])
    ]

    torch.stack(diffs).mean([| 0L |])

let private lastToken (h: torch.Tensor) = h[-1]
let private meanTokens (h: torch.Tensor) = h.mean ([| 0L |])
let private final (o: Qwen2Output) = o.HiddenLast

[<Tests>]
let tests =
    testList "DeltaEmbedder" [
        test "a zero adapter (B = 0) has a delta of exactly zero" {
            use model = micro 1L

            use lora =
                LoraSet.Initialize(LoraConfig(Rank = 4, Alpha = 8.0), Qwen2Presets.Micro, 5L)

            use embedder = new DeltaEmbedder(model, asIds probes)
            use delta = embedder.ComputeNoGrad lora
            Expect.equal delta.shape [| 32L |] "width H"
            Expect.equal (delta.abs().max().item<float32>()) 0.0f "exactly zero"
        }

        test "the delta equals a naive per-probe loop, with the probes padded in one batch or in several" {
            use model = micro 2L
            use lora = adapter 3L
            use expected = naive model lora probes final lastToken

            for batchSize in [ 4; 3; 1 ] do
                use embedder = new DeltaEmbedder(model, asIds probes, DeltaSpec.Default, batchSize)
                use delta = embedder.ComputeNoGrad lora
                Expect.isLessThan (maxAbsDiff delta expected) 1e-5 $"batch size {batchSize}"
                Expect.isGreaterThan (expected.abs().max().item<float32>()) 1e-2f "non-trivial"
        }

        test "mean pooling equals the naive mean over real tokens" {
            use model = micro 4L
            use lora = adapter 5L
            use expected = naive model lora probes final meanTokens

            use embedder =
                new DeltaEmbedder(model, asIds probes, DeltaSpec(Pooling = DeltaPooling.MeanOverRealTokens))

            use delta = embedder.ComputeNoGrad lora
            Expect.isLessThan (maxAbsDiff delta expected) 1e-5 "mean pooling"
        }

        test "several layers concatenate to layers × H, the last block being the default delta; averaging keeps H" {
            use model = micro 6L
            use lora = adapter 7L
            use plain = new DeltaEmbedder(model, asIds probes)
            use concat = new DeltaEmbedder(model, asIds probes, DeltaSpec(Layers = [| 1; -1 |]))

            use average =
                new DeltaEmbedder(
                    model,
                    asIds probes,
                    DeltaSpec(Layers = [| 1; -1 |], Combination = LayerCombination.Average)
                )

            use d = plain.ComputeNoGrad lora
            use c = concat.ComputeNoGrad lora
            use a = average.ComputeNoGrad lora
            Expect.equal c.shape [| 64L |] "concatenated width"
            Expect.isLessThan (maxAbsDiff (c.narrow (0, 32L, 32L)) d) 1e-6 "last block"
            use layer1 = naive model lora probes (fun o -> o.HiddenStates[1]) lastToken
            // Layer outputs are not normalised, so their tolerance scales with their size.
            let tolerance = 1e-5 * (1.0 + float (layer1.abs().max().item<float32>()))
            Expect.isLessThan (maxAbsDiff (c.narrow (0, 0L, 32L)) layer1) tolerance "first block: layer 0's output"
            Expect.equal a.shape [| 32L |] "averaged width"
            Expect.isLessThan (maxAbsDiff a ((layer1 + d) / 2.0)) tolerance "average"
        }

        test "probes longer than the maximum keep their last tokens" {
            use model = micro 8L
            use lora = adapter 9L

            use truncated =
                new DeltaEmbedder(model, asIds [ [ 1; 2; 3; 4; 5 ]; [ 6; 7 ] ], DeltaSpec(MaxProbeLength = 3))

            use expected = naive model lora [ [ 3; 4; 5 ]; [ 6; 7 ] ] final lastToken
            use delta = truncated.ComputeNoGrad lora
            Expect.isLessThan (maxAbsDiff delta expected) 1e-5 "left truncation"
        }

        test "a loss on the delta alone gives non-zero gradients in A and B of every targeted module" {
            use model = micro 10L
            use lora = adapter 11L

            for t in lora.Tensors() do
                t.requires_grad_ true |> ignore

            use embedder = new DeltaEmbedder(model, asIds probes)
            use delta = embedder.Compute lora
            use loss = delta.pow(2.0.ToScalar()).sum()
            loss.backward ()

            for KeyValue(path, m) in lora.Modules do
                Expect.isGreaterThan (m.A.grad.abs().sum().item<float32>()) 0.0f $"{path} A"
                Expect.isGreaterThan (m.B.grad.abs().sum().item<float32>()) 0.0f $"{path} B"
        }

        test "autograd agrees with a central finite difference on one B entry (float64)" {
            use model = new Qwen2ForCausalLM(Qwen2Presets.Micro, dtype = torch.float64)
            randomize model 12L
            model.eval ()
            use source = adapter 13L

            let modules =
                readOnlyDict [
                    for KeyValue(path, m) in source.Modules ->
                        path,
                        LoraModule.LowRank(
                            m.A.to_type(torch.float64).detach().requires_grad_(true),
                            m.B.to_type(torch.float64).detach().requires_grad_(true),
                            m.Scale
                        )
                ]

            use lora = new LoraSet(modules, true)
            use embedder = new DeltaEmbedder(model, asIds probes)
            let g = new torch.Generator(14UL)
            use weights = torch.randn ([| 32L |], dtype = torch.float64, generator = g)
            let loss () = (embedder.Compute lora * weights).sum()
            use l = loss ()
            l.backward ()
            let b = lora.Modules["model.layers.0.self_attn.v_proj"].B
            let analytic = b.grad[1L, 2L].item<float>()
            // The norms and rotary tables compute in float32 even in a float64 model, so the step cannot be tiny.
            let h = 1e-3

            let at (value: float) =
                use _ = torch.no_grad ()
                b[1L, 2L] <- torch.tensor (value, dtype = torch.float64)
                use v = loss ()
                v.item<float>()

            let original = b[1L, 2L].item<float>()
            let numeric = (at (original + h) - at (original - h)) / (2.0 * h)
            at original |> ignore
            Expect.isGreaterThan (abs analytic) 1e-6 "non-zero gradient"
            Expect.isLessThan (abs (numeric - analytic) / abs analytic) 1e-2 $"autograd {analytic} vs numeric {numeric}"
        }

        test "batched adapters give the rows of the adapters one by one" {
            use model = micro 15L
            let singles = [ for s in 16L .. 18L -> adapter s ]

            let modules =
                readOnlyDict [
                    for KeyValue(path, m) in singles[0].Modules ->
                        path,
                        LoraModule.LowRank(
                            torch.stack [ for s in singles -> s.Modules[path].A ],
                            torch.stack [ for s in singles -> s.Modules[path].B ],
                            m.Scale
                        )
                ]

            use batched = new LoraSet(modules, true)

            for batchSize in [ 4; 3 ] do
                use embedder = new DeltaEmbedder(model, asIds probes, DeltaSpec.Default, batchSize)
                let before = embedder.ForwardCalls
                use rows = embedder.ComputeBatched batched
                Expect.equal (embedder.ForwardCalls - before) embedder.ProbeBatchCount "one pass per probe batch"
                Expect.equal rows.shape [| 3L; 32L |] "shape"

                singles
                |> List.iteri (fun i s ->
                    use one = embedder.ComputeNoGrad s
                    Expect.isLessThan (maxAbsDiff rows[int64 i] one) 1e-5 $"row {i}")

            for s in singles do
                s.Dispose()
        }

        test "the base pass runs once, at construction; Compute runs one pass per probe batch" {
            use model = micro 19L
            use lora = adapter 20L
            use embedder = new DeltaEmbedder(model, asIds probes, DeltaSpec.Default, 2)
            Expect.equal embedder.ProbeBatchCount 2 "two probe batches"
            Expect.equal embedder.ForwardCalls 2 "base passes"
            use baseBefore = embedder.BaseRepresentation.clone ()
            use first = embedder.ComputeNoGrad lora
            use second = embedder.ComputeNoGrad lora
            Expect.equal embedder.ForwardCalls 6 "two passes per Compute"
            Expect.equal (maxAbsDiff baseBefore embedder.BaseRepresentation) 0.0 "base unchanged"
            Expect.equal (maxAbsDiff first second) 0.0 "same delta"
        }

        test "the projection is deterministic by seed, linear in the delta, and keeps zero at zero" {
            use model = micro 21L
            use lora = adapter 22L

            use zero =
                LoraSet.Initialize(LoraConfig(Rank = 4, Alpha = 8.0), Qwen2Presets.Micro, 23L)

            let make seed =
                new DeltaEmbedder(model, asIds probes, DeltaSpec(ProjectionDim = 8, ProjectionSeed = seed))

            use a = make 1L
            use b = make 1L
            use c = make 2L
            use plain = new DeltaEmbedder(model, asIds probes)
            use pa = a.ComputeNoGrad lora
            use pb = b.ComputeNoGrad lora
            use pc = c.ComputeNoGrad lora
            Expect.equal pa.shape [| 8L |] "projected width"
            Expect.equal a.Dim 8L "Dim"
            Expect.equal (maxAbsDiff pa pb) 0.0 "same seed"
            Expect.isGreaterThan (maxAbsDiff pa pc) 1e-4 "other seed"
            use pz = a.ComputeNoGrad zero
            Expect.equal (pz.abs().max().item<float32>()) 0.0f "zero stays zero"
            // The documented map: R [D, dim] with entries N(0, 1) / √dim drawn in float64 with the seed.
            use d = plain.ComputeNoGrad lora
            let g = new torch.Generator(1UL)
            use r = torch.randn ([| 32L; 8L |], dtype = torch.float64, generator = g) / sqrt 8.0
            use expected = d.to_type(torch.float64).matmul r
            Expect.isLessThan (maxAbsDiff pa expected) 1e-5 "Δ · R"
            Expect.isGreaterThan (d.norm().item<float32>()) 0.0f "non-zero delta"
        }

        test
            "Mode B: a model with the adapter merged into its weights gives the adapter's delta; the base itself gives zero" {
            use model = micro 25L
            use lora = adapter 26L

            for spec in [ DeltaSpec.Default; DeltaSpec(Layers = [| 1; -1 |], ProjectionDim = 8) ] do
                use embedder = new DeltaEmbedder(model, asIds probes, spec)
                use functional = embedder.ComputeNoGrad lora
                use merged = micro 25L
                LoraMerge.IntoBase(merged, lora)
                use fromModel = embedder.ComputeModel merged
                Expect.equal embedder.Kind DeltaKind.Activation "kind"
                Expect.isGreaterThan (functional.abs().max().item<float32>()) 1e-2f "non-trivial"
                Expect.isLessThan (maxAbsDiff fromModel functional) 1e-4 $"merged = functional ({spec.Key()})"
                use self = embedder.ComputeModel model
                Expect.equal (self.abs().max().item<float32>()) 0.0f "the base gives exactly zero"
        }

        test "Mode B refuses a model of another width or depth" {
            use model = micro 27L
            use embedder = new DeltaEmbedder(model, asIds probes)

            for fields in [ [ "hidden_size", jnode 48 ]; [ "num_hidden_layers", jnode 3 ] ] do
                use other = new Qwen2ForCausalLM(Qwen2Presets.Micro |> withFields fields)

                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () -> embedder.ComputeModel other |> ignore))
                    "one architecture"
                    (fst fields.Head)
        }

        test "bad probes and layer indices are errors" {
            use model = micro 24L

            Expect.throwsT<LlgbmException>
                (fun () -> new DeltaEmbedder(model, asIds [ [ 1; 64 ] ]) |> ignore)
                "out of vocab"

            Expect.throwsT<LlgbmException> (fun () -> new DeltaEmbedder(model, asIds [ [] ]) |> ignore) "empty probe"

            Expect.throwsT<LlgbmException>
                (fun () -> new DeltaEmbedder(model, asIds [ [ 1 ] ], DeltaSpec(Layers = [| 3 |])) |> ignore)
                "layer 3 of 0..2"
        }
    ]
