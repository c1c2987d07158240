module LLGBM.Tests.EncodeCommandTests

open System.Text.Json
open Expecto
open LLGBM.Tests.TestCli
open LLGBM.Tests.TestEncoders
open LLGBM.Tests.SafetensorsTests.Kit

let private parse (stdout: string) = JsonDocument.Parse(stdout).RootElement

let private matrix (e: JsonElement) = [|
    for row in e.EnumerateArray() -> [| for v in row.EnumerateArray() -> v.GetSingle() |]
|]

[<Tests>]
let encode =
    testList "llgbm encode" [
        test "--json prints the MiniLM vectors and their cosines" {
            let code, out, err =
                llgbm [
                    "encode"
                    "--text"
                    "A man is eating food."
                    "--text"
                    "A man is eating a piece of bread."
                    "--text"
                    "The girl is carrying a baby."
                    "--json"
                ]

            Expect.equal code 0 err
            let root = parse out
            Expect.equal (root.GetProperty("encoder").GetString()) "minilm" "the default encoder"
            Expect.equal (root.GetProperty("dimension").GetInt32()) 384 "D"
            let vectors = matrix (root.GetProperty "vectors")
            let cos = matrix (root.GetProperty "cosine")
            Expect.equal vectors.Length 3 "three vectors"
            let bread, baby = cos[0][1], cos[0][2]

            Expect.floatClose
                Accuracy.medium
                (float bread)
                (cosine vectors[0] vectors[1])
                "cosine of the printed vectors"

            Expect.isGreaterThan bread (baby + 0.5f) "food ~ bread"
            Expect.stringContains err "texts/s" "timing on stderr"
        }
        test "--encoder random --seed names the seed; the table lists norms and cosines" {
            let code, out, err =
                llgbm [
                    "encode"
                    "--encoder"
                    "random"
                    "--seed"
                    "3"
                    "--text"
                    "a b"
                    "--text"
                    "c d"
                ]

            Expect.equal code 0 err
            Expect.stringContains out "seed=3" "identity"
            Expect.stringContains out "norm 1.0000" "unit norm"
            Expect.stringContains out "cosine similarities" "matrix"
        }
        test "--cache reuses the encodings of an earlier run" {
            withTempDir (fun dir ->
                let args = [
                    "encode"
                    "--encoder"
                    "random"
                    "--text"
                    "x y"
                    "--text"
                    "z"
                    "--cache"
                    dir
                    "--json"
                ]

                let code1, out1, err1 = llgbm args
                Expect.equal code1 0 err1
                Expect.stringContains err1 "0 hit(s), 2 encoded" "first run encodes"
                let code2, out2, err2 = llgbm args
                Expect.equal code2 0 err2
                Expect.stringContains err2 "2 hit(s), 0 encoded" "second run reads the cache"

                Expect.equal
                    (matrix ((parse out2).GetProperty "vectors"))
                    (matrix ((parse out1).GetProperty "vectors"))
                    "same vectors")
        }
        test "bad input is a one-line error with exit code 2" {
            for args, expected in
                [
                    [ "encode" ], "--text"
                    [ "encode"; "--encoder"; "bert"; "--text"; "a" ], "Unknown encoder 'bert'"
                    [ "encode"; "--encoder"; "lm-mean"; "--text"; "a" ], "--model DIR"
                ] do
                let code, _, err = llgbm args
                Expect.equal code 2 $"%A{args}"
                Expect.stringContains err expected $"%A{args}"
        }
    ]
