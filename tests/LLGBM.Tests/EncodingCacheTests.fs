module LLGBM.Tests.EncodingCacheTests

open System.IO
open Expecto
open LLGBM
open LLGBM.Checkpoints
open LLGBM.Conditioning
open LLGBM.Tests.TestModels
open LLGBM.Tests.TestEncoders
open LLGBM.Tests.SafetensorsTests.Kit

/// The fake's expected rows, computed from its definition.
let private expected dim (texts: string list) =
    texts
    |> List.map (fun t -> CountingEncoder.Vector(t, dim, 1.0f))
    |> Array.ofList

let private cached (inner: CountingEncoder) (cache: EncodingCache) =
    new CachedSentenceEncoder(inner, cache, ownsInner = false)

[<Tests>]
let cachedEncoder =
    testList "CachedSentenceEncoder.Encode" [
        test "a miss encodes, a hit returns identical values without encoding" {
            let inner = new CountingEncoder("fake-v1", 6)
            use encoder = cached inner (EncodingCache())
            let texts = [ "alpha"; "beta"; "gamma" ]
            let first = encodeRows encoder texts
            Expect.equal first (expected 6 texts) "the inner encoder's values"
            let second = encodeRows encoder texts
            Expect.equal second first "identical values on a hit"
            Expect.equal inner.Calls [ texts ] "encoded once"
            Expect.equal (encoder.MemoryHits, encoder.Misses) (3L, 3L) "3 misses, then 3 hits"
        }
        test "a changed text misses, the others hit" {
            let inner = new CountingEncoder("fake-v1", 4)
            use encoder = cached inner (EncodingCache())
            encodeRows encoder [ "a"; "b"; "c" ] |> ignore
            let r = encodeRows encoder [ "a"; "b!"; "c" ]
            Expect.equal inner.Calls [ [ "a"; "b"; "c" ]; [ "b!" ] ] "only the new text is encoded"
            Expect.equal r (expected 4 [ "a"; "b!"; "c" ]) "rows in the asked order"
        }
        test "another encoder identity misses on the same cache" {
            let cache = EncodingCache()
            let v1 = new CountingEncoder("fake-v1", 3)
            let v2 = new CountingEncoder("fake-v2", 3, 2.0f)
            use e1 = cached v1 cache
            use e2 = cached v2 cache
            encodeRows e1 [ "x"; "y" ] |> ignore
            let r = encodeRows e2 [ "x"; "y" ]
            Expect.equal v2.Encoded [ "x"; "y" ] "v2 encodes everything itself"
            Expect.equal r[0] (CountingEncoder.Vector("x", 3, 2.0f)) "v2's own values, not v1's"
        }
        test "a text repeated in a batch is encoded once" {
            let inner = new CountingEncoder("fake-v1", 2)
            use encoder = cached inner (EncodingCache())
            let r = encodeRows encoder [ "p"; "q"; "p" ]
            Expect.equal inner.Encoded [ "p"; "q" ] "distinct texts only"
            Expect.equal r[2] r[0] "same row for the same text"
        }
        test "entries on disk survive a new process: read back bit for bit, nothing encoded" {
            withTempDir (fun dir ->
                let texts = [ "one"; "two"; "three" ]

                let first =
                    encodeRows (cached (new CountingEncoder("fake-v1", 5)) (EncodingCache dir)) texts

                let inner = new CountingEncoder("fake-v1", 5)
                use again = cached inner (EncodingCache dir)
                let second = encodeRows again texts
                Expect.equal second first "identical values"
                Expect.isEmpty inner.Calls "nothing encoded"
                Expect.equal again.DiskHits 3L "three read from disk")
        }
        test "the real MiniLM encoder through the cache gives its own values" {
            use encoder =
                new CachedSentenceEncoder(miniLm.Value, EncodingCache(), ownsInner = false)

            let texts = [ "The weather is lovely today."; "He drove to the stadium." ]
            let direct = encodeRows miniLm.Value texts
            Expect.equal (encodeRows encoder texts) direct "miss"
            Expect.equal (encodeRows encoder texts) direct "hit"
            Expect.equal encoder.Identity miniLm.Value.Identity "the inner identity"
        }
    ]

[<Tests>]
let cacheFiles =
    testList "EncodingCache.Put" [
        test "writes one safetensors entry per text under the encoder's hash, and a description" {
            withTempDir (fun dir ->
                let inner = new CountingEncoder("fake-v1", 3)
                encodeRows (cached inner (EncodingCache dir)) [ "hello" ] |> ignore
                let path = EncodingCache.EntryPath(dir, "fake-v1", "hello")
                let encoderDir = Path.Combine(dir, ContentHash.OfText "fake-v1")
                let textHash = ContentHash.OfText "hello"

                Expect.equal
                    path
                    (Path.Combine(encoderDir, textHash[..1], textHash + ".safetensors"))
                    "documented layout"

                use reader = SafetensorsReader.Open path
                Expect.equal reader.Metadata["encoder_identity"] "fake-v1" "identity in the metadata"
                Expect.equal reader.Metadata["text_sha256"] textHash "text hash in the metadata"
                use t = reader.Read EncodingCache.TensorName
                Expect.equal (t.data<float32>().ToArray()) (CountingEncoder.Vector("hello", 3, 1.0f)) "the values"
                Expect.isTrue (File.Exists(Path.Combine(encoderDir, EncodingCache.EncoderFileName))) "encoder.json"

                let leftovers =
                    Directory.GetFiles(dir, "*" + AtomicFile.TempSuffix, SearchOption.AllDirectories)

                Expect.isEmpty leftovers "no temporary files")
        }
        test "an entry that names another text is an error naming the file" {
            withTempDir (fun dir ->
                encodeRows (cached (new CountingEncoder("fake-v1", 3)) (EncodingCache dir)) [ "right" ]
                |> ignore

                let target = EncodingCache.EntryPath(dir, "fake-v1", "wrong")
                Directory.CreateDirectory(Path.GetDirectoryName target) |> ignore
                File.Copy(EncodingCache.EntryPath(dir, "fake-v1", "right"), target)
                let fresh = EncodingCache dir

                let message =
                    errorMessage<LlgbmException>(fun () -> fresh.TryGet("fake-v1", "wrong", 3) |> ignore)

                Expect.stringContains message target "the file"
                Expect.stringContains message "corrupt" "what is wrong")
        }
    ]
