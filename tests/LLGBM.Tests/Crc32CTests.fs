module LLGBM.Tests.Crc32CTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open LLGBM.Training
open LLGBM.Tests.TfEventsReader

let private crc (bytes: byte[]) = Crc32C.Compute(ReadOnlySpan bytes)

let private hex (n: uint32) = $"0x{n:X8}"

let private equalHex (actual: uint32) (expected: uint32) message =
    Expect.equal (hex actual) (hex expected) message

[<Tests>]
let tests =
    testList "Crc32C" [
        test "The published check value: CRC-32C of \"123456789\" is 0xE3069283" {
            equalHex (crc (Encoding.ASCII.GetBytes "123456789")) 0xE3069283u "check value"
        }

        test "RFC 3720 (iSCSI) appendix B.4 test vectors" {
            equalHex (crc (Array.zeroCreate<byte> 32)) 0x8A9136AAu "32 bytes of zeros"
            equalHex (crc (Array.create 32 0xFFuy)) 0x62A8AB43u "32 bytes of 0xFF"
            equalHex (crc [| for i in 0..31 -> byte i |]) 0x46DD794Eu "32 incrementing bytes 00..1F"
            equalHex (crc [| for i in 31..-1..0 -> byte i |]) 0x113FDB5Cu "32 decrementing bytes 1F..00"
        }

        test "The empty input gives 0" { equalHex (crc [||]) 0u "empty" }

        testPropertyWithConfig (Generators.config 200) "Equals the bit-by-bit definition on any bytes"
        <| Prop.forAll (ArbMap.defaults |> ArbMap.arbitrary<byte[]>) (fun bytes ->
            equalHex (crc bytes) (bitwiseCrc32c bytes) $"{bytes.Length} bytes")

        test "Mask rotates right by 15 and adds 0xa282ead8, wrapping at 2^32 (values computed by hand)" {
            // 0 rotates to 0: the delta alone.
            equalHex (Crc32C.Mask 0u) 0xA282EAD8u "mask of 0"
            // 0xE3069283 rotated right by 15 is 0x2507C60D; plus 0xA282EAD8 is 0xC78AB0E5 (no carry out).
            equalHex (Crc32C.Mask 0xE3069283u) 0xC78AB0E5u "mask of the check value"
            // All ones rotate to all ones; 0xFFFFFFFF + 0xA282EAD8 wraps to 0xA282EAD7.
            equalHex (Crc32C.Mask 0xFFFFFFFFu) 0xA282EAD7u "mask wraps"
            // Bit 15 moves to bit 0, bit 0 to bit 17.
            equalHex (Crc32C.Mask 0x8000u) (0xA282EAD8u + 1u) "bit 15 to bit 0"
            equalHex (Crc32C.Mask 1u) (0xA282EAD8u + 0x20000u) "bit 0 to bit 17"
        }

        test "Masked is the mask of the CRC" {
            let bytes = Encoding.ASCII.GetBytes "123456789"
            equalHex (Crc32C.Masked(ReadOnlySpan bytes)) 0xC78AB0E5u "masked check value"
        }
    ]
