module LLGBM.Tests.ByteLevelTokenizerTests

open System.IO
open System.Text
open System.Text.Json
open Expecto
open FsCheck.FSharp
open LLGBM
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

let private specials = [ "<|endoftext|>"; "<|im_start|>"; "<|im_end|>"; "<|pad|>" ]

[<Tests>]
let tests =
    testList "ByteLevelTokenizer" [
        test "ids are the UTF-8 bytes: hé = 68 C3 A9" {
            // h = 0x68 = 104; é = U+00E9 = 110_00011 10_101001 in UTF-8 = C3 A9 = 195 169.
            Expect.sequenceEqual (ByteLevelTokenizer().Encode "hé") [ 104; 195; 169 ] "hé"
            // No normalisation: e + U+0301 stays e (101) + CC 81 (204 129).
            Expect.sequenceEqual (ByteLevelTokenizer().Encode "e\u0301") [ 101; 204; 129 ] "decomposed"
            Expect.sequenceEqual (ByteLevelTokenizer().Encode "") [] "empty"
        }
        test "special tokens written in the text are single ids 256..259" {
            let t = ByteLevelTokenizer()

            Expect.sequenceEqual
                (t.Encode "<|im_start|>hi<|im_end|><|endoftext|><|pad|>")
                [ 257; 104; 105; 258; 256; 259 ]
                "specials"

            Expect.sequenceEqual (t.Encode "<|im_end") [ for c in "<|im_end" -> int c ] "incomplete: bytes"
            Expect.equal (t.EndOfTextId, t.VocabSize) (256, 260) "end of text, vocabulary"
            Expect.sequenceEqual (t.SpecialTokens.Keys |> Seq.sort) (List.sort specials) "names"

            Expect.equal
                (ByteLevelTokenizer.EndOfText,
                 ByteLevelTokenizer.ImStart,
                 ByteLevelTokenizer.ImEnd,
                 ByteLevelTokenizer.Pad)
                (256, 257, 258, 259)
                "constants"
        }
        testPropertyWithConfig
            (Generators.config 200)
            "Decode (Encode text) = text, Encode = UTF-8 bytes without specials"
        <| Prop.forAll (Generators.unicodeTextArb specials) (fun text ->
            let t = ByteLevelTokenizer()
            let ids = t.Encode text
            Expect.equal (t.Decode ids) text "round trip"

            if not (specials |> List.exists text.Contains) then
                Expect.sequenceEqual ids [ for b in Encoding.UTF8.GetBytes text -> int b ] "bytes")
        testPropertyWithConfig
            (Generators.config 100)
            "saved and loaded by Tokenizers.Load, it encodes and decodes alike"
        <| Prop.forAll (Generators.unicodeTextArb specials) (fun text ->
            withTempDir (fun dir ->
                ByteLevelTokenizer().Save dir
                let loaded = Tokenizers.Load dir
                Expect.isTrue (loaded :? ByteLevelTokenizer) "implementation"
                Expect.sequenceEqual (loaded.Encode text) (ByteLevelTokenizer().Encode text) "ids"
                Expect.equal (loaded.Decode(loaded.Encode text)) text "round trip"))
        test "Save writes a Hugging Face tokenizer.json: 256 byte symbols, no merges, specials as added tokens" {
            withTempDir (fun dir ->
                let t = ByteLevelTokenizer()
                t.Save dir
                use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer.json")))
                let model = doc.RootElement.GetProperty "model"
                Expect.equal (model.GetProperty("type").GetString()) "BPE" "model type"
                let vocab = model.GetProperty "vocab"
                Expect.equal (vocab.EnumerateObject() |> Seq.length) 256 "256 symbols"
                // GPT-2's table: space → Ġ (U+0120), newline → Ċ (U+010A), 'A' → 'A', 0xFF → ÿ.
                Expect.equal (vocab.GetProperty("Ġ").GetInt32()) 32 "space"
                Expect.equal (vocab.GetProperty("Ċ").GetInt32()) 10 "newline"
                Expect.equal (vocab.GetProperty("A").GetInt32()) 65 "A"
                Expect.equal (vocab.GetProperty("ÿ").GetInt32()) 255 "0xFF"
                Expect.equal (model.GetProperty("merges").GetArrayLength()) 0 "no merges"
                Expect.equal (doc.RootElement.GetProperty("normalizer").ValueKind) JsonValueKind.Null "no normaliser"

                let added = [
                    for a in doc.RootElement.GetProperty("added_tokens").EnumerateArray() ->
                        a.GetProperty("content").GetString(), a.GetProperty("id").GetInt32()
                ]

                Expect.equal added (List.zip specials [ 256..259 ]) "added tokens"
                let config = File.ReadAllText(Path.Combine(dir, "tokenizer_config.json"))
                use configDoc = JsonDocument.Parse config
                Expect.equal (configDoc.RootElement.GetProperty("eos_token").GetString()) "<|endoftext|>" "eos")
        }
        test "the saved files read through Qwen2Tokenizer (no NFC, no split, no merges) also give the bytes" {
            withTempDir (fun dir ->
                ByteLevelTokenizer().Save dir
                let generic = Qwen2Tokenizer.Load dir
                Expect.isFalse generic.NormalizesToNfc "normalizer null"
                let text = "e\u0301 hé  12<|im_end|>\n"
                Expect.sequenceEqual (generic.Encode text) (ByteLevelTokenizer().Encode text) "ids")
        }
        test "Decode refuses ids that are neither bytes nor special tokens" {
            let message =
                errorMessage<LlgbmException>(fun () -> ByteLevelTokenizer().Decode [ 104; 265 ] |> ignore)

            Expect.stringContains message "265" "names the id"
        }
        test "special-token ids below 256 are refused" {
            let message =
                errorMessage<LlgbmException>(fun () ->
                    ByteLevelTokenizer(readOnlyDict [ "<|endoftext|>", 10 ]) |> ignore)

            Expect.stringContains message "<|endoftext|>" "names the token"
        }
    ]
