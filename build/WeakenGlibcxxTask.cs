// One source, two uses: MSBuild's RoslynCodeTaskFactory compiles it as the build task of LibTorchGlibcxxFix.targets (which patches
// the copy in a build's output folder), and Microsoft.ML.Cora compiles it with CORA_LIBRARY defined (which patches a copy at run time
// when a host such as a notebook kernel loads the natives from the NuGet package folder; see LibTorchRuntime).
using System;
using System.IO;
using System.Text;
#if !CORA_LIBRARY
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class CoraWeakenGlibcxxRequirement : Task
{
    [Required] public string Directory { get; set; }

    public override bool Execute()
    {
        if (!System.IO.Directory.Exists(Directory)) return true;
        if (GlibcxxRequirement.HostHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "Host libstdc++ provides " + GlibcxxRequirement.Version + "; libLibTorchSharp.so left as is.");
            return true;
        }
        foreach (var file in System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories))
        {
            try
            {
                int n = GlibcxxRequirement.Patch(file);
                if (n > 0) Log.LogMessage(MessageImportance.High, "Cora: marked " + GlibcxxRequirement.Version + " weak in " + file);
            }
            catch (Exception e)
            {
                Log.LogWarning("Cora: could not patch " + file + ": " + e.Message);
            }
        }
        return true;
    }
}
#else
namespace Microsoft.ML.Cora.Runtime {
#endif

/// <summary>
/// TorchSharp 0.107's libLibTorchSharp.so asks for GLIBCXX_3.4.32 for a single marker symbol (std::ios_base_library_init).
/// Debian 12 and Ubuntu 22.04 ship libstdc++ up to 3.4.30, so loading fails. Marking the requirement weak (VER_FLG_WEAK in
/// .gnu.version_r) lets the loader accept the older libstdc++. Only copies are patched; system files and the NuGet cache are never touched.
/// </summary>
#if CORA_LIBRARY
internal
#endif
static class GlibcxxRequirement
{
    public const string Version = "GLIBCXX_3.4.32";
    const ushort VerFlgWeak = 0x2;
    const uint ShtGnuVerneed = 0x6ffffffe;

    /// <summary>Whether this machine's libstdc++ provides <see cref="Version"/> (true where no libstdc++ is at a known place).</summary>
    public static bool HostHasVersion()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        };
        byte[] needle = Encoding.ASCII.GetBytes(Version + "\0");
        bool found = false;
        foreach (var path in candidates)
        {
            if (!File.Exists(path)) continue;
            found = true;
            if (IndexOf(File.ReadAllBytes(path), needle) >= 0) return true;
        }
        // No libstdc++ found at a known place: assume a modern host (musl or unusual layouts) and do nothing.
        return !found;
    }

    static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= hay.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    /// <summary>Patches the file in place (through a temporary file). Returns the number of entries changed.</summary>
    public static int Patch(string path)
    {
        byte[] b = File.ReadAllBytes(path);
        int changed = Weaken(b);
        if (changed > 0)
        {
            string tmp = path + ".cora-tmp";
            File.WriteAllBytes(tmp, b);
            File.Delete(path);
            File.Move(tmp, path);
        }
        return changed;
    }

    /// <summary>Sets VER_FLG_WEAK on every Vernaux entry named <see cref="Version"/> in an ELF64 image. Returns the number of
    /// entries changed (0 when there is none or each is weak already).</summary>
    public static int Weaken(byte[] b)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F' || b[4] != 2 || b[5] != 1)
            throw new InvalidDataException("not a little-endian ELF64 file");
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        int changed = 0;
        for (int s = 0; s < shnum; s++)
        {
            int sh = checked((int)shoff + s * shentsize);
            if (BitConverter.ToUInt32(b, sh + 4) != ShtGnuVerneed) continue;
            long off = (long)BitConverter.ToUInt64(b, sh + 0x18);
            uint link = BitConverter.ToUInt32(b, sh + 0x28);
            int strSh = checked((int)shoff + (int)link * shentsize);
            long strOff = (long)BitConverter.ToUInt64(b, strSh + 0x18);
            long vn = off;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                uint aux = BitConverter.ToUInt32(b, (int)vn + 8);
                uint next = BitConverter.ToUInt32(b, (int)vn + 12);
                long va = vn + aux;
                for (int i = 0; i < cnt; i++)
                {
                    uint name = BitConverter.ToUInt32(b, (int)va + 8);
                    if (ReadCString(b, strOff + name) == Version)
                    {
                        ushort flags = BitConverter.ToUInt16(b, (int)va + 4);
                        if ((flags & VerFlgWeak) == 0)
                        {
                            flags |= VerFlgWeak;
                            b[va + 4] = (byte)(flags & 0xff);
                            b[va + 5] = (byte)(flags >> 8);
                            changed++;
                        }
                    }
                    uint vnaNext = BitConverter.ToUInt32(b, (int)va + 12);
                    if (vnaNext == 0) break;
                    va += vnaNext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        return changed;
    }

    static string ReadCString(byte[] b, long at)
    {
        long end = at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, (int)(end - at));
    }
}
#if CORA_LIBRARY
}
#endif
