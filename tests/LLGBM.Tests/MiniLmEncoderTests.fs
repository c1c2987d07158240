module LLGBM.Tests.MiniLmEncoderTests

open Expecto
open TorchSharp
open LLGBM
open LLGBM.Conditioning
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestEncoders

/// The similarities sentence-transformers' documentation prints for all-MiniLM-L6-v2 (sbert.net, "Quickstart" and
/// "Semantic Textual Similarity"), rounded there to four decimals: (sentence, sentence, cosine).
let published = [
    "The weather is lovely today.", "It's so sunny outside!", 0.6660
    "The weather is lovely today.", "He drove to the stadium.", 0.1046
    "It's so sunny outside!", "He drove to the stadium.", 0.1411
    "The new movie is awesome", "The dog plays in the garden", 0.0543
    "The new movie is awesome", "The new movie is so great", 0.8939
    "The new movie is awesome", "A woman watches TV", -0.0502
    "The cat sits outside", "The dog plays in the garden", 0.2838
    "The cat sits outside", "The new movie is so great", -0.0029
    "The cat sits outside", "A woman watches TV", 0.1310
    "A man is playing guitar", "The dog plays in the garden", 0.2277
    "A man is playing guitar", "The new movie is so great", -0.0136
    "A man is playing guitar", "A woman watches TV", -0.0327
]

/// (anchor, paraphrase, unrelated): the paraphrase means nearly the same; in the first the unrelated sentence shares
/// more word pieces with the anchor ("the", ".") than the paraphrase does.
let semanticTriples = [
    "The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."
    "A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."
]

/// cos(anchor, paraphrase) − cos(anchor, unrelated) under an encoder.
let semanticMargin (encoder: ISentenceEncoder) (anchor, paraphrase, unrelated) =
    let r = encodeRows encoder [ anchor; paraphrase; unrelated ]
    cosine r[0] r[1] - cosine r[0] r[2]

[<Tests>]
let pretrained =
    testList "MiniLmEncoder.Encode pretrained" [
        test "reproduces the cosine similarities published for all-MiniLM-L6-v2" {
            let sentences =
                published |> List.collect (fun (a, b, _) -> [ a; b ]) |> List.distinct

            let r = encodeRows miniLm.Value sentences
            let row s = r[List.findIndex ((=) s) sentences]

            for (a, b, expected) in published do
                let actual = cosine (row a) (row b)
                // Four published decimals: at most 5e-5 of rounding, plus float32 arithmetic.
                Expect.isLessThan
                    (abs (actual - expected))
                    2e-4
                    $"cos(%s{a}, %s{b}) = %.4f{actual}, published %.4f{expected}"
        }
        test "a paraphrase is clearly closer than a sentence about something else" {
            let r =
                encodeRows miniLm.Value [
                    "A man is eating food."
                    "A man is eating a piece of bread."
                    "The girl is carrying a baby."
                    "A man is riding a horse."
                ]

            let bread = cosine r[0] r[1]
            Expect.isGreaterThan bread (cosine r[0] r[2] + 0.5) "food ~ bread, not the girl carrying a baby"
            Expect.isGreaterThan bread (cosine r[0] r[3] + 0.3) "food ~ bread, not riding a horse"

            for triple in semanticTriples do
                Expect.isGreaterThan (semanticMargin miniLm.Value triple) 0.4 $"margin of %A{triple}"
        }
    ]

[<Tests>]
let encode =
    testList "MiniLmEncoder.Encode" [
        test "gives [K, 384] float32 rows of unit L2 norm, without gradient" {
            let texts = [ "One."; "Two words."; "A longer sentence with several more words in it." ]
            use t = miniLm.Value.Encode(ResizeArray texts)
            Expect.equal t.shape [| 3L; 384L |] "[K, D]"
            Expect.equal t.dtype torch.float32 "float32"
            Expect.isFalse t.requires_grad "frozen"
            Expect.equal miniLm.Value.Dimension 384 "D"

            for r in rows t do
                Expect.floatClose Accuracy.medium (norm r) 1.0 "unit norm"
        }
        test "a batch of K texts gives the rows of encoding each text alone" {
            let texts = [
                "Hi."
                "The quick brown fox jumps over the lazy dog, twice, before breakfast."
                "Question: what is 2 + 3?\nAnswer:"
                "words: red cat pear ?"
            ]

            let batched = encodeRows miniLm.Value texts

            for i, text in List.indexed texts do
                let alone = (encodeRows miniLm.Value [ text ])[0]

                let diff =
                    Array.map2 (fun (a: float32) b -> abs (a - b)) batched[i] alone |> Array.max

                Expect.isLessThan diff 1e-5f $"row %d{i} (padding must not change it)"
        }
        test "an empty batch gives [0, 384]" {
            use t = miniLm.Value.Encode(ResizeArray [])
            Expect.equal t.shape [| 0L; 384L |] "no rows"
        }
        test "words past the maximum length do not change the encoding" {
            use short = new MiniLmEncoder(maxSequenceLength = 8)
            let a = encodeRows short [ "one two three four five six seven eight nine" ]

            let b =
                encodeRows short [ "one two three four five six seven eight nine ten eleven twelve" ]

            Expect.equal a b "both truncated to the same 8 tokens"
            let c = encodeRows short [ "one two three four five six" ]
            Expect.equal c a "the 6 word pieces that fit between [CLS] and [SEP]"
            let d = encodeRows short [ "one two three four five" ]
            Expect.isLessThan (cosine a[0] d[0]) 0.9999 "a shorter text is another encoding"
        }
    ]

[<Tests>]
let tokenize =
    testList "MiniLmEncoder.Tokenizer" [
        test "BERT uncased ids: [CLS] hello world [SEP]" {
            // bert-base-uncased's vocabulary: [CLS] 101, [SEP] 102, hello 7592, world 2088.
            Expect.equal (miniLm.Value.Tokenizer.Encode "Hello world") [| 101; 7592; 2088; 102 |] "ids"
        }
        test "lower-cases and strips accents" {
            let tok = miniLm.Value.Tokenizer
            Expect.equal (tok.Encode "HELLO Café") (tok.Encode "hello cafe") "uncased"
        }
        test "truncates to the maximum length, ending with [SEP]" {
            let tok = miniLm.Value.Tokenizer
            let ids = tok.Encode(String.replicate 400 "word ")
            Expect.equal ids.Length 256 "max_seq_length 256"
            Expect.equal ids[0] 101 "[CLS]"
            Expect.equal ids[255] 102 "[SEP]"
            Expect.equal tok.VocabularySize 30522 "BERT's vocabulary"
        }
    ]

[<Tests>]
let identity =
    testList "MiniLmEncoder.Identity" [
        test "names the model's hash, the tokenization and the pooling" {
            let id = miniLm.Value.Identity
            Expect.stringContains id $"onnx-sha256=%s{miniLm.Value.ModelSha256}" "model hash"
            Expect.stringContains id "max-tokens=256" "truncation"
            Expect.stringContains id "mean-pool|l2" "pooling"
            Expect.equal miniLm.Value.ModelSha256.Length 64 "a SHA-256"
        }
        test "another maximum length is another identity" {
            use other = new MiniLmEncoder(maxSequenceLength = 128)
            Expect.notEqual other.Identity miniLm.Value.Identity "different truncation, different cache keys"
            Expect.equal other.ModelSha256 miniLm.Value.ModelSha256 "same model"
        }
        test "bad settings are errors" {
            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> new MiniLmEncoder(maxSequenceLength = 1) |> ignore))
                "between 2 and 512"
                "length"

            Expect.stringContains
                (errorMessage<LlgbmException>(fun () -> new MiniLmEncoder(batchSize = 0) |> ignore))
                "batch size"
                "batch"
        }
    ]
