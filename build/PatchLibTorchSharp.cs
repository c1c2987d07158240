// MSBuild task: lets TorchSharp's native shim load on systems whose libstdc++ predates GLIBCXX_3.4.32.
//
// libLibTorchSharp.so (TorchSharp 0.107, built with GCC 13) declares a dependency on the symbol version
// GLIBCXX_3.4.32 only for `_ZSt21ios_base_library_initv`, which it never calls (no relocation refers to it).
// Marking that one version requirement weak (VER_FLG_WEAK in its Vernaux entry of `.gnu.version_r`) lets
// the dynamic loader accept an older libstdc++ (GCC 12, GLIBCXX_3.4.30); where the version exists, a weak
// requirement binds as before. The patch is applied to the copy in the build output only, written to a
// temporary file that replaces it, so that a hard link into the NuGet cache is never modified, and is
// idempotent. It is applied on every machine, whatever its libstdc++, so that every build output is the same
// and a check that the patched copy is the one loaded (tests/LLGBM.Tests/FsiLibraryTests.fs) means the same
// on a machine with a newer libstdc++ as on a stock Debian 12.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class PatchLibTorchSharp : Task
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;
    const string Version = "GLIBCXX_3.4.32";

    /// <summary>The libLibTorchSharp.so in the build output.</summary>
    [Required]
    public string LibraryPath { get; set; } = "";

    public override bool Execute()
    {
        if (!File.Exists(LibraryPath))
        {
            return true;
        }
        try
        {
            var bytes = File.ReadAllBytes(LibraryPath);
            var outcome = Weaken(bytes);
            if (outcome == Outcome.Patched)
            {
                // Keep the copied file's time stamp, so that incremental builds see it as up to date.
                var stamp = File.GetLastWriteTimeUtc(LibraryPath);
                var temp = LibraryPath + ".patching";
                File.WriteAllBytes(temp, bytes);
                File.Delete(LibraryPath);
                File.Move(temp, LibraryPath);
                File.SetLastWriteTimeUtc(LibraryPath, stamp);
                Log.LogMessage(MessageImportance.High, $"Marked the {Version} requirement of {LibraryPath} weak.");
            }
            else
            {
                Log.LogMessage(MessageImportance.Low, $"{LibraryPath}: {outcome}.");
            }
            return true;
        }
        catch (InvalidDataException e)
        {
            Log.LogError($"{LibraryPath}: cannot patch the {Version} requirement: {e.Message}");
            return false;
        }
    }

    enum Outcome { Patched, AlreadyWeak, NoRequirement }

    static Outcome Weaken(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("expected a 64-bit little-endian ELF file");
        var shoff = checked((int)BitConverter.ToUInt64(elf, 0x28));
        var shentsize = BitConverter.ToUInt16(elf, 0x3A);
        var shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (var i = 0; i < shnum; i++)
        {
            var sh = shoff + i * shentsize;
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed)
                continue;
            var offset = checked((int)BitConverter.ToUInt64(elf, sh + 24));
            var link = BitConverter.ToUInt32(elf, sh + 40);
            var count = BitConverter.ToUInt32(elf, sh + 44);
            var strtab = checked((int)BitConverter.ToUInt64(elf, shoff + (int)link * shentsize + 24));
            var need = offset;
            for (var n = 0; n < count; n++)
            {
                var auxCount = BitConverter.ToUInt16(elf, need + 2);
                var aux = need + (int)BitConverter.ToUInt32(elf, need + 8);
                for (var a = 0; a < auxCount; a++)
                {
                    var name = ReadString(elf, strtab + (int)BitConverter.ToUInt32(elf, aux + 8));
                    if (name == Version)
                    {
                        var flags = BitConverter.ToUInt16(elf, aux + 4);
                        if ((flags & VerFlgWeak) != 0)
                            return Outcome.AlreadyWeak;
                        var weak = (ushort)(flags | VerFlgWeak);
                        elf[aux + 4] = (byte)(weak & 0xff);
                        elf[aux + 5] = (byte)(weak >> 8);
                        return Outcome.Patched;
                    }
                    aux += (int)BitConverter.ToUInt32(elf, aux + 12);
                }
                need += (int)BitConverter.ToUInt32(elf, need + 12);
            }
        }
        return Outcome.NoRequirement;
    }

    static string ReadString(byte[] bytes, int start)
    {
        var end = Array.IndexOf(bytes, (byte)0, start);
        return Encoding.ASCII.GetString(bytes, start, end - start);
    }
}
