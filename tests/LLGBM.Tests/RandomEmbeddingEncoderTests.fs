module LLGBM.Tests.RandomEmbeddingEncoderTests

open Expecto
open LLGBM
open LLGBM.Conditioning
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestEncoders

/// An independent implementation of the documented draw: token t's vector is Box–Muller normals from SplitMix64
/// seeded with seed ⊕ 0xD1B54A32D192ED03 · (t + 1); a text's encoding is the mean over its ids, L2 normalised.
module private Reference =
    let splitMix (state: uint64 ref) =
        state.Value <- state.Value + 0x9E3779B97F4A7C15UL
        let mutable z = state.Value
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)

    let uniform state =
        float (splitMix state >>> 11) / 9007199254740992.0

    let tokenVector (seed: int64) (dim: int) (id: int) =
        let state = ref (uint64 seed ^^^ (0xD1B54A32D192ED03UL * (uint64 id + 1UL)))
        let v = Array.zeroCreate<float> dim

        for d in 0..2 .. dim - 1 do
            let u1 = 1.0 - uniform state
            let u2 = uniform state
            let r = sqrt (-2.0 * log u1)
            v[d] <- float (float32 (r * cos (2.0 * System.Math.PI * u2)))

            if d + 1 < dim then
                v[d + 1] <- float (float32 (r * sin (2.0 * System.Math.PI * u2)))

        v

    let encode (seed: int64) (dim: int) (ids: int[]) =
        let sum = Array.zeroCreate<float> dim

        for id in ids do
            Array.iteri (fun d x -> sum[d] <- sum[d] + x) (tokenVector seed dim id)

        let mean = sum |> Array.map (fun s -> s / float ids.Length)
        let n = sqrt (Array.sumBy (fun x -> x * x) mean)
        mean |> Array.map (fun x -> x / n)

[<Tests>]
let encode =
    testList "RandomEmbeddingEncoder.Encode" [
        test "matches an independent implementation of the documented draw" {
            use encoder = new RandomEmbeddingEncoder(seed = 42L, dimension = 17)
            let texts = [ "A man is eating food."; "kqzm ->"; "" ]
            let actual = encodeRows encoder texts

            for i, text in List.indexed texts do
                let expected = Reference.encode 42L 17 (encoder.Tokenizer.Encode text)

                let diff =
                    Array.map2 (fun (a: float32) b -> abs (float a - b)) actual[i] expected
                    |> Array.max

                Expect.isLessThan diff 1e-6 $"text %d{i}"
        }
        test "[K, D] unit rows; the same seed gives the same encodings, another seed others" {
            use a = new RandomEmbeddingEncoder(seed = 1L)
            use b = new RandomEmbeddingEncoder(seed = 1L)
            use c = new RandomEmbeddingEncoder(seed = 2L)
            let texts = [ "The weather is lovely today."; "He drove to the stadium." ]
            let ra = encodeRows a texts
            Expect.equal ra.Length 2 "K rows"
            Expect.equal ra[0].Length 384 "D = 384 by default"

            for r in ra do
                Expect.floatClose Accuracy.medium (norm r) 1.0 "unit norm"

            Expect.equal (encodeRows b texts) ra "same seed"
            let other = (encodeRows c texts)[0]
            Expect.isLessThan (cosine other ra[0]) 0.5 "another seed, another table"
            Expect.notEqual a.Identity c.Identity "the seed is part of the identity"
            Expect.stringContains a.Identity "ablation" "named as the ablation"
        }
        test "is not pretrained: similarity follows shared word pieces, not meaning" {
            for seed in 0L .. 4L do
                use random = new RandomEmbeddingEncoder(seed = seed)

                for triple in MiniLmEncoderTests.semanticTriples do
                    let margin = MiniLmEncoderTests.semanticMargin random triple
                    Expect.isLessThan margin 0.15 $"seed %d{seed}, %A{triple}: no semantic margin"

                // The paraphrase shares no word piece with the anchor but [CLS]/[SEP]; the unrelated sentence shares "the" and ".".
                let weather = MiniLmEncoderTests.semanticTriples[0]

                Expect.isLessThan
                    (MiniLmEncoderTests.semanticMargin random weather)
                    0.0
                    $"seed %d{seed}: lexical overlap wins"
        }
        test "a dimension below 1 is an error" {
            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> new RandomEmbeddingEncoder(dimension = 0) |> ignore))
                "dimension"
                "message"
        }
    ]
