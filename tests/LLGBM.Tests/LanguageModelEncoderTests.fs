module LLGBM.Tests.LanguageModelEncoderTests

open System.IO
open Expecto
open TorchSharp
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Conditioning
open LLGBM.Model
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestEncoders

/// The documented encoding computed naively: each text alone (no padding), the final-norm hidden state of every
/// token averaged in float64, then divided by its norm.
let private naive (model: Qwen2ForCausalLM) (tokenizer: ITokenizer) (maxTokens: int) (text: string) =
    use _ = torch.no_grad ()

    let ids =
        tokenizer.Encode text |> Seq.truncate maxTokens |> Seq.map int64 |> List.ofSeq

    use output =
        model.Forward(longs [ 1L; int64 ids.Length ] ids, ForwardOptions(Logits = LogitPositions.None))

    let states = rows (output.HiddenLast[0])
    let dim = states[0].Length

    let mean =
        Array.init dim (fun d -> (states |> Array.sumBy (fun s -> float s[d])) / float states.Length)

    let n = sqrt (Array.sumBy (fun x -> x * x) mean)
    mean |> Array.map (fun x -> x / n)

let private texts = [ "abc"; "hello world, 42!"; "x"; "a much longer text: 0123456789 and more." ]

[<Tests>]
let encode =
    testList "LanguageModelEncoder.Encode" [
        test "is the normalised mean final-norm hidden state of each text, batched with padding" {
            use model = micro 3L

            use encoder =
                new LanguageModelEncoder(model, TestTokenizer.tokenizer, "micro-3", batchSize = 3)

            use t = encoder.Encode(ResizeArray texts)
            Expect.equal t.shape [| 4L; 32L |] "[K, H]"
            let actual = rows t

            for i, text in List.indexed texts do
                let expected = naive model TestTokenizer.tokenizer 512 text

                let diff =
                    Array.map2 (fun (a: float32) b -> abs (float a - b)) actual[i] expected
                    |> Array.max

                Expect.isLessThan diff 1e-5 $"text %d{i}"
        }
        test "keeps the first MaxTokens tokens" {
            use model = micro 4L

            use encoder =
                new LanguageModelEncoder(model, TestTokenizer.tokenizer, "micro-4", maxTokens = 5)

            let r = encodeRows encoder [ "abcdefghij"; "abcde" ]
            let diff = Array.map2 (fun (a: float32) b -> abs (a - b)) r[0] r[1] |> Array.max
            Expect.isLessThan diff 1e-6f "both are abcde"
        }
        test "is frozen: no gradient even when the model's parameters require one" {
            use model = micro 5L

            for p in model.parameters () do
                p.requires_grad <- true

            use encoder = new LanguageModelEncoder(model, TestTokenizer.tokenizer, "micro-5")
            use t = encoder.Encode(ResizeArray [ "abc"; "de" ])
            Expect.isFalse t.requires_grad "no grad"
        }
        test "an empty text is an error naming it" {
            use model = micro 6L
            use encoder = new LanguageModelEncoder(model, TestTokenizer.tokenizer, "micro-6")

            let message =
                errorMessage<LlgbmException>(fun () -> encoder.Encode(ResizeArray [ "abc"; "" ]) |> ignore)

            Expect.stringContains message "text 1" "which text"
        }
        test "the identity holds the model's identity and the settings" {
            use model = micro 7L
            use a = new LanguageModelEncoder(model, TestTokenizer.tokenizer, "weights-A")
            use b = new LanguageModelEncoder(model, TestTokenizer.tokenizer, "weights-B")

            use c =
                new LanguageModelEncoder(model, TestTokenizer.tokenizer, "weights-A", maxTokens = 64)

            Expect.stringContains a.Identity "weights-A" "model identity"
            Expect.equal (Set.ofList [ a.Identity; b.Identity; c.Identity ]).Count 3 "all differ"
        }
    ]

[<Tests>]
let fromCheckpoint =
    testList "LanguageModelEncoder.FromCheckpoint" [
        test "loads a checkpoint with its tokenizer; its identity follows the weights' content" {
            SafetensorsTests.Kit.withTempDir (fun dir ->
                let save (seed: int64) (sub: string) =
                    let path = Path.Combine(dir, sub)
                    use model = new Qwen2ForCausalLM(Qwen2Presets.Tiny)
                    model.InitializeWeights seed
                    model.SavePretrained path
                    ByteLevelTokenizer().Save path
                    path

                let a = save 1L "a"
                let b = save 2L "b"
                use encA = LanguageModelEncoder.FromCheckpoint a
                use encA2 = LanguageModelEncoder.FromCheckpoint a
                use encB = LanguageModelEncoder.FromCheckpoint b
                Expect.equal encA.Dimension 128 "the tiny model's hidden size"
                Expect.equal encA.Identity encA2.Identity "same files, same identity"
                Expect.notEqual encA.Identity encB.Identity "other weights, other identity"
                Expect.stringContains encA.Identity (ContentHash.OfCheckpoint a) "the checkpoint's content hash"
                let r = encodeRows encA [ "047 ="; "kqzm ->" ]
                Expect.floatClose Accuracy.medium (norm r[0]) 1.0 "unit norm"

                Expect.stringContains
                    (errorMessage<LlgbmException>(fun () ->
                        LanguageModelEncoder.FromCheckpoint(Path.Combine(dir, "missing")) |> ignore))
                    "missing"
                    "names the directory")
        }
    ]
