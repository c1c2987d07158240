module LLGBM.Tests.TokenizersTests

open System.IO
open Expecto
open LLGBM
open LLGBM.Text
open LLGBM.Tests.TestModels
open LLGBM.Tests.SafetensorsTests.Kit

let private loadError (dir: string) =
    errorMessage<LlgbmException>(fun () -> Tokenizers.Load dir |> ignore)

[<Tests>]
let tests =
    testList "Tokenizers" [
        test "Load names the directory and the files looked for when there are none" {
            withTempDir (fun dir ->
                let message = loadError dir
                Expect.stringContains message dir "directory"
                Expect.stringContains message "tokenizer.json" "first choice"
                Expect.stringContains message "vocab.json + merges.txt" "second choice")
        }
        test "Load says which of vocab.json and merges.txt is missing" {
            withTempDir (fun dir ->
                File.WriteAllText(Path.Combine(dir, "vocab.json"), "{}")
                Expect.stringContains (loadError dir) "merges.txt is missing" "merges")
        }
        test "Load reports a directory that does not exist" {
            let dir = Path.Combine(Path.GetTempPath(), "llgbm-no-such-dir-7f3a")
            Expect.stringContains (loadError dir) "does not exist" "missing directory"
        }
        test "Load reports a tokenizer.json that is not JSON, naming the file" {
            withTempDir (fun dir ->
                File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{ not json")
                let message = loadError dir
                Expect.stringContains message (Path.Combine(dir, "tokenizer.json")) "file"
                Expect.stringContains message "not valid JSON" "what")
        }
        test "Load refuses an unsupported model type, naming the field" {
            withTempDir (fun dir ->
                File.WriteAllText(
                    Path.Combine(dir, "tokenizer.json"),
                    """{"model": {"type": "WordPiece", "vocab": {}}}"""
                )

                Expect.stringContains (loadError dir) "model.type" "field")
        }
        test "Load refuses a pre-tokenizer other than Qwen2's" {
            withTempDir (fun dir ->
                ByteLevelTokenizer().Save dir
                let path = Path.Combine(dir, "tokenizer.json")
                // A GPT-2 style ByteLevel step with its own regex splits differently from Qwen2.
                File.WriteAllText(path, File.ReadAllText(path).Replace("\"use_regex\": false", "\"use_regex\": true"))
                Expect.stringContains (loadError dir) "pre_tokenizer" "field")
        }
        test "Load picks ByteLevelTokenizer for a byte vocabulary without merges" {
            withTempDir (fun dir ->
                ByteLevelTokenizer().Save dir
                Expect.isTrue (Tokenizers.Load dir :? ByteLevelTokenizer) "byte level")
        }
    ]
