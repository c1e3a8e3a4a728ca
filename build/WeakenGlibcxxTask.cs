// Compiled by MSBuild's RoslynCodeTaskFactory (see LibTorchGlibcxxFix.targets).
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class CoraWeakenGlibcxxRequirement : Task
{
    const string Version = "GLIBCXX_3.4.32";
    const ushort VerFlgWeak = 0x2;
    const uint ShtGnuVerneed = 0x6ffffffe;

    [Required] public string Directory { get; set; }

    public override bool Execute()
    {
        if (!System.IO.Directory.Exists(Directory)) return true;
        if (HostHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "Host libstdc++ provides " + Version + "; libLibTorchSharp.so left as is.");
            return true;
        }
        foreach (var file in System.IO.Directory.GetFiles(Directory, "libLibTorchSharp.so", SearchOption.AllDirectories))
        {
            try
            {
                int n = Patch(file);
                if (n > 0) Log.LogMessage(MessageImportance.High, "Cora: marked " + Version + " weak in " + file);
            }
            catch (Exception e)
            {
                Log.LogWarning("Cora: could not patch " + file + ": " + e.Message);
            }
        }
        return true;
    }

    static bool HostHasVersion()
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

    /// Sets VER_FLG_WEAK on every Vernaux entry named GLIBCXX_3.4.32. Returns the number of entries changed.
    public static int Patch(string path)
    {
        byte[] b = File.ReadAllBytes(path);
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
        if (changed > 0)
        {
            string tmp = path + ".cora-tmp";
            File.WriteAllBytes(tmp, b);
            File.Delete(path);
            File.Move(tmp, path);
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
