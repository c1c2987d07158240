module LLGBM.Tests.MeaningDeltaEmbedderTests

open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Delta
open LLGBM.Evaluation
open LLGBM.Lora
open LLGBM.Model
open LLGBM.Text
open LLGBM.Tests.TestModels

/// Pairs of unequal prompt and continuation lengths, so a batch of them is padded; every character is in the test
/// tokenizer's alphabet, one token each.
let private pairs = [
    "047 =", " 050"
    "kqzm -", " mzqk"
    "pick 34 71 12 55 :", " 71"
    "a", " yes."
]

let private probeSet (ps: (string * string) list) =
    MeaningProbeSet.FromPairs("test", [ for (p, c) in ps -> MeaningProbe(p, c) ])

let private everyModule (layers: int) = [
    for layer in 0 .. layers - 1 do
        for name in LoraTarget.All -> layer, name
]

let private adapter seed =
    randomLora Qwen2Presets.Micro seed 4L 0.3 2.0 (everyModule 2)

/// A second backbone: wider, deeper, byte-level vocabulary (260 ids).
let private byteConfig =
    Qwen2Presets.Micro
    |> withFields [
        "vocab_size", jnode 260
        "hidden_size", jnode 48
        "intermediate_size", jnode 80
        "num_hidden_layers", jnode 3
        "num_key_value_heads", jnode 4
    ]

let private byteModel seed =
    let model = new Qwen2ForCausalLM(byteConfig)
    randomize model seed
    model.eval ()
    model

/// The naive log-probability of `continuation` after `prompt`: one unpadded sequence, logits at every position, and a
/// loop over the continuation's tokens summing logit − log-sum-exp in float64.
let private naiveLogProb
    (model: Qwen2ForCausalLM)
    (lora: LoraSet)
    (tokenizer: ITokenizer)
    (prompt: string)
    (continuation: string)
    =
    use _ = torch.no_grad ()
    let p = List.ofSeq (tokenizer.Encode prompt)
    let c = List.ofSeq (tokenizer.Encode continuation)
    use ids = torch.tensor(p @ c |> List.map int64 |> Array.ofList).reshape(1L, -1L)
    use output = model.Forward(ids, ForwardOptions(Lora = lora))
    let vocab = int model.Config.VocabSize
    let logits = output.Logits[0].to_type(torch.float64).data<float>().ToArray()
    let mutable sum = 0.0

    for j in 0 .. c.Length - 1 do
        let row = logits[(p.Length + j - 1) * vocab .. (p.Length + j) * vocab - 1]
        let top = Array.max row
        let logSumExp = top + log (row |> Array.sumBy (fun x -> exp (x - top)))
        sum <- sum + row[c[j]] - logSumExp

    sum

/// The naive delta meaning: per pair, adapted minus base log-probability divided by the continuation's UTF-8 bytes.
let private naive (model: Qwen2ForCausalLM) (lora: LoraSet) (tokenizer: ITokenizer) (ps: (string * string) list) = [|
    for (p, c) in ps ->
        (naiveLogProb model lora tokenizer p c - naiveLogProb model null tokenizer p c)
        / float (System.Text.Encoding.UTF8.GetByteCount c)
|]

let private values (t: torch.Tensor) =
    t.to_type(torch.float64).cpu().data<float>().ToArray()

let private expectClose (actual: float array) (expected: float array) tolerance message =
    Expect.equal actual.Length expected.Length $"{message}: width"

    for i in 0 .. actual.Length - 1 do
        Expect.isLessThan
            (abs (actual[i] - expected[i]))
            tolerance
            $"{message}: coordinate {i} ({actual[i]} vs {expected[i]})"

let private tokenizer = TestTokenizer.tokenizer

[<Tests>]
let tests =
    testList "MeaningDeltaEmbedder" [
        test "a zero adapter (B = 0) has a delta of exactly zero, one coordinate per pair" {
            use model = micro 1L

            use lora =
                LoraSet.Initialize(LoraConfig(Rank = 4, Alpha = 8.0), Qwen2Presets.Micro, 5L)

            use embedder = new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs)
            Expect.equal embedder.Dim 4L "Dim"
            Expect.equal embedder.Kind DeltaKind.Meaning "kind"
            use delta = embedder.ComputeNoGrad lora
            Expect.equal delta.shape [| 4L |] "one coordinate per pair"
            Expect.equal (delta.abs().max().item<float32>()) 0.0f "exactly zero"
        }

        test "each coordinate equals a naive per-token loop over unpadded logits, however the pairs are batched" {
            use model = micro 2L
            use lora = adapter 3L
            let expected = naive model lora tokenizer pairs
            Expect.isGreaterThan (expected |> Array.map abs |> Array.max) 1e-2 "non-trivial"

            for batchSize in [ 4; 3; 1 ] do
                use embedder =
                    new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs, probeBatchSize = batchSize)

                use delta = embedder.ComputeNoGrad lora
                expectClose (values delta) expected 1e-4 $"batch size {batchSize}"
        }

        test "the normalisation divides the summed log-probability by bytes, characters, tokens or nothing" {
            // " ok<|endoftext|>": 4 tokens, 16 characters and bytes; " café": 6 bytes, 5 characters, 6 byte tokens.
            let cases = [
                (fun () -> micro 4L),
                tokenizer,
                ("abc", " ok<|endoftext|>"),
                [
                    LengthNormalization.Bytes, 16.0
                    LengthNormalization.Characters, 16.0
                    LengthNormalization.Tokens, 4.0
                    LengthNormalization.None, 1.0
                ]
                (fun () -> byteModel 5L),
                (ByteLevelTokenizer() :> ITokenizer),
                ("abc", " café"),
                [
                    LengthNormalization.Bytes, 6.0
                    LengthNormalization.Characters, 5.0
                    LengthNormalization.Tokens, 6.0
                    LengthNormalization.None, 1.0
                ]
            ]

            for (make, tok, (prompt, continuation), divisors) in cases do
                use model = make ()
                let config = model.Config

                use lora = randomLora config 6L 4L 0.3 2.0 (everyModule config.NumHiddenLayers)

                let sum =
                    naiveLogProb model lora tok prompt continuation
                    - naiveLogProb model null tok prompt continuation

                for (normalization, divisor) in divisors do
                    use embedder =
                        new MeaningDeltaEmbedder(
                            model,
                            tok,
                            probeSet [ prompt, continuation ],
                            MeaningDeltaSpec(Normalization = normalization)
                        )

                    use delta = embedder.ComputeNoGrad lora
                    expectClose (values delta) [| sum / divisor |] 1e-4 $"{continuation} {normalization}"
        }

        test "prompts longer than the limit keep their last tokens" {
            use model = micro 7L
            use lora = adapter 8L

            use embedder =
                new MeaningDeltaEmbedder(
                    model,
                    tokenizer,
                    probeSet [ "abcdefgh", " xy" ],
                    MeaningDeltaSpec(MaxLength = 6)
                )

            use delta = embedder.ComputeNoGrad lora
            expectClose (values delta) (naive model lora tokenizer [ "fgh", " xy" ]) 1e-4 "left truncation"
        }

        test "a loss on the delta alone gives non-zero gradients in A and B of every targeted module" {
            use model = micro 9L
            use lora = adapter 10L

            for t in lora.Tensors() do
                t.requires_grad_ true |> ignore

            use embedder = new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs)
            use delta = embedder.Compute lora
            use loss = delta.pow(2.0.ToScalar()).sum()
            loss.backward ()

            for KeyValue(path, m) in lora.Modules do
                Expect.isGreaterThan (m.A.grad.abs().sum().item<float32>()) 0.0f $"{path} A"
                Expect.isGreaterThan (m.B.grad.abs().sum().item<float32>()) 0.0f $"{path} B"
        }

        test "autograd agrees with a central finite difference on one A entry (float64)" {
            use model = new Qwen2ForCausalLM(Qwen2Presets.Micro, dtype = torch.float64)
            randomize model 11L
            model.eval ()
            use source = adapter 12L

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
            use embedder = new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs)
            let loss () = (embedder.Compute lora).sum()
            use l = loss ()
            Expect.equal l.dtype torch.float64 "float64 for a float64 model"
            l.backward ()
            let a = lora.Modules["model.layers.1.mlp.up_proj"].A
            let analytic = a.grad[2L, 3L].item<float>()
            let h = 1e-3

            let at (value: float) =
                use _ = torch.no_grad ()
                a[2L, 3L] <- torch.tensor (value, dtype = torch.float64)
                use v = loss ()
                v.item<float>()

            let original = a[2L, 3L].item<float>()
            let numeric = (at (original + h) - at (original - h)) / (2.0 * h)
            at original |> ignore
            Expect.isGreaterThan (abs analytic) 1e-6 "non-zero gradient"
            Expect.isLessThan (abs (numeric - analytic) / abs analytic) 1e-2 $"autograd {analytic} vs numeric {numeric}"
        }

        test "batched adapters give the rows of the adapters one by one, in microbatches of adapters" {
            use model = micro 13L
            let singles = [ for s in 14L .. 16L -> adapter s ]

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

            for (probeBatch, adapterBatch, groups) in [ 4, 3, 1; 3, 2, 2; 2, 1, 3 ] do
                use embedder =
                    new MeaningDeltaEmbedder(
                        model,
                        tokenizer,
                        probeSet pairs,
                        probeBatchSize = probeBatch,
                        adapterBatchSize = adapterBatch
                    )

                let before = embedder.ForwardCalls
                use rows = embedder.ComputeBatched batched

                Expect.equal
                    (embedder.ForwardCalls - before)
                    (groups * embedder.ProbeBatchCount)
                    "one pass per adapter group and pair batch"

                Expect.equal rows.shape [| 3L; 4L |] "shape"

                singles
                |> List.iteri (fun i s ->
                    use one = embedder.ComputeNoGrad s
                    expectClose (values rows[int64 i]) (values one) 1e-5 $"row {i}, {probeBatch}/{adapterBatch}")

            for s in singles do
                s.Dispose()
        }

        test "the base pass runs once, at construction; Compute runs one pass per pair batch" {
            use model = micro 17L
            use lora = adapter 18L

            use embedder =
                new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs, probeBatchSize = 3)

            Expect.equal embedder.ProbeBatchCount 2 "two pair batches"
            Expect.equal embedder.ForwardCalls 2 "base passes"
            use first = embedder.ComputeNoGrad lora
            use second = embedder.ComputeNoGrad lora
            Expect.equal embedder.ForwardCalls 6 "two passes per Compute"
            Expect.equal (maxAbsDiff first second) 0.0 "same delta"
        }

        test "backbones of different width, depth and tokenizer give deltas of the same width for the same pairs" {
            use small = micro 19L
            use wide = byteModel 20L
            use smallLora = adapter 21L

            use wideLora = randomLora byteConfig 22L 4L 0.3 2.0 (everyModule 3)

            use a = new MeaningDeltaEmbedder(small, tokenizer, probeSet pairs)
            use b = new MeaningDeltaEmbedder(wide, ByteLevelTokenizer(), probeSet pairs)
            use da = a.ComputeNoGrad smallLora
            use db = b.ComputeNoGrad wideLora
            Expect.notEqual small.Config.HiddenSize wide.Config.HiddenSize "different widths"
            Expect.equal da.shape db.shape "same width"
            Expect.equal da.shape [| 4L |] "one per pair"
            expectClose (values db) (naive wide wideLora (ByteLevelTokenizer()) pairs) 1e-4 "byte-level backbone"
        }

        test
            "Mode B: a model with the adapter merged into its weights gives the adapter's delta; the base itself gives zero" {
            use model = micro 23L
            use lora = adapter 24L
            use embedder = new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs)
            use functional = embedder.ComputeNoGrad lora
            use merged = micro 23L
            LoraMerge.IntoBase(merged, lora)
            use fromModel = embedder.ComputeModel merged
            Expect.isGreaterThan (functional.abs().max().item<float32>()) 1e-2f "non-trivial"
            expectClose (values fromModel) (values functional) 1e-4 "merged = functional"
            use self = embedder.ComputeModel model
            Expect.equal (self.abs().max().item<float32>()) 0.0f "the base gives exactly zero"
        }

        test "Mode B compares models of different width and depth that read the same tokens" {
            use model = micro 25L

            let otherConfig =
                Qwen2Presets.Micro
                |> withFields [
                    "hidden_size", jnode 48
                    "num_hidden_layers", jnode 3
                    "num_key_value_heads", jnode 4
                ]

            use other = new Qwen2ForCausalLM(otherConfig)
            randomize other 26L
            other.eval ()
            use embedder = new MeaningDeltaEmbedder(model, tokenizer, probeSet pairs)
            use delta = embedder.ComputeModel other

            let expected = [|
                for (p, c) in pairs ->
                    (naiveLogProb other null tokenizer p c - naiveLogProb model null tokenizer p c)
                    / float (System.Text.Encoding.UTF8.GetByteCount c)
            |]

            expectClose (values delta) expected 1e-4 "log p_other − log p_base per byte"
        }

        test "bad pairs, vocabularies and arguments are errors" {
            use model = micro 27L
            use lora = adapter 28L

            let tooSmall = Qwen2Presets.Micro |> withFields [ "vocab_size", jnode 20 ]

            use smallVocab = new Qwen2ForCausalLM(tooSmall)

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    new MeaningDeltaEmbedder(smallVocab, tokenizer, probeSet [ "abc", " z" ])
                    |> ignore))
                "outside the model's vocabulary"
                "token id beyond the vocabulary"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () ->
                    new MeaningDeltaEmbedder(
                        model,
                        tokenizer,
                        probeSet [ "a", " abcdef" ],
                        MeaningDeltaSpec(MaxLength = 4)
                    )
                    |> ignore))
                "continuation of probe 0"
                "continuation too long"

            use embedder = new MeaningDeltaEmbedder(model, tokenizer, probeSet [ "abc", " z" ])

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> embedder.ComputeModel smallVocab |> ignore))
                "fine-tuned model's vocabulary"
                "Mode B vocabulary"

            use batched =
                new LoraSet(
                    readOnlyDict [
                        for KeyValue(path, m) in lora.Modules ->
                            path, LoraModule.LowRank(m.A.unsqueeze 0L, m.B.unsqueeze 0L, m.Scale)
                    ],
                    false
                )

            Expect.throwsT<LlgbmException> (fun () -> embedder.Compute batched |> ignore) "Compute takes one adapter"
        }
    ]
